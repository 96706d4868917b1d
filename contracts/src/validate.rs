//! The stateless rules of commands, in one place: the field rules (ids, free text, currency
//! and country codes, bounded numbers) and, per command type, [`Validate`], which applies them
//! to every field (implemented next to each command enum). Pure functions. The same rule runs
//! wherever a command enters: the HTTP write path (a 400 before anything is produced), the
//! command processor (a dead letter of kind `invalid`) and the decider itself.
mod iso_countries;

pub use iso_countries::is_assigned_alpha2;
use std::fmt::Display;
use std::ops::RangeInclusive;

/// Longest id (order, customer, SKU), in characters (Unicode scalar values, not bytes).
pub const MAX_ID_CHARS: usize = 128;
/// Most lines one order (and so one shipment) may have, one per SKU.
pub const MAX_ORDER_LINES: usize = 100;
/// Most units of one SKU an order line (and so a reservation) may ask for.
pub const MAX_LINE_QUANTITY: i32 = 10_000;
/// Most units one restock may add.
pub const MAX_RESTOCK_QUANTITY: i32 = 1_000_000;
/// Largest low-stock threshold of a SKU: a billion units, far above any shelf.
pub const MAX_LOW_STOCK_THRESHOLD: i64 = 1_000_000_000;
/// Latest instant a command may name, in epoch milliseconds: the last of the year 9999.
pub const MAX_EPOCH_MS: i64 = 253_402_300_799_999;
/// Largest amount of money a command may carry (a deposit, an order's total, a capture), in
/// cents: far below `i64::MAX`, so balances and totals cannot overflow in practice.
pub const MAX_AMOUNT_CENTS: i64 = 1_000_000_000_000;
pub const MAX_ADDRESS_FIELD_CHARS: usize = 256;
/// Longest reason a customer may give for a cancellation.
pub const MAX_CANCEL_REASON_CHARS: usize = 500;
/// Longest reason another service reports (a decline, a shipping refusal).
pub const MAX_REPORTED_REASON_CHARS: usize = 1024;
/// Longest destination country a shipment request may name (it is refused unless served).
pub const MAX_COUNTRY_CHARS: usize = 64;
pub const MAX_RECIPIENT_CHARS: usize = 256;
/// Longest notification text.
pub const MAX_MESSAGE_CHARS: usize = 4096;
/// Longest error text a delivery outcome keeps (the delivery shortens longer ones).
pub const MAX_DELIVERY_ERROR_CHARS: usize = 1024;

/// The rules a command must meet whatever the state of its aggregate: the first field that
/// breaks one, named as the command spells it (`lines[2].quantity`).
pub trait Validate {
    fn validate(&self) -> Result<(), InvalidField>;
}

/// A command field that breaks a rule; `Display` is the reason given to the sender.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InvalidField {
    /// The field's name as the command spells it, e.g. `order_id`.
    pub field: String,
    pub message: String,
}

impl From<InvalidField> for String {
    fn from(error: InvalidField) -> String {
        error.message
    }
}

/// An id is text a person can read and type back: 1 to [`MAX_ID_CHARS`] characters, not only
/// white space, and none of them invisible or steering: no control characters (NUL, tabs,
/// line breaks, escapes), no format characters (U+202E turns text around, U+200B is a width of
/// nothing), no line or paragraph separators, no private-use or unassigned code points. Such
/// ids cannot be told apart on a screen, break logs and terminals, and PostgreSQL text cannot
/// even hold a NUL.
pub fn id(field: &str, value: &str) -> Result<(), InvalidField> {
    let chars = value.chars().count();
    if !(1..=MAX_ID_CHARS).contains(&chars) {
        return Err(InvalidField { field: field.to_string(), message: format!("{field} must be 1 to {MAX_ID_CHARS} characters, got {chars}") });
    }
    if value.chars().all(char::is_whitespace) {
        return Err(InvalidField { field: field.to_string(), message: format!("{field} must not be blank") });
    }
    readable_text(field, value)
}

/// Free text people type (an address line, a cancellation reason, a recipient): at most
/// `max_chars` characters and, like an id, nothing invisible or steering in it.
pub fn text(field: &str, value: &str, max_chars: usize) -> Result<(), InvalidField> {
    let chars = value.chars().count();
    if chars > max_chars {
        return Err(InvalidField { field: field.to_string(), message: format!("{field} must be at most {max_chars} characters, got {chars}") });
    }
    readable_text(field, value)
}

/// The character rule ids and free text share, naming the first character that breaks it.
fn readable_text(field: &str, value: &str) -> Result<(), InvalidField> {
    match value.chars().enumerate().find(|(_, c)| !readable(*c)) {
        None => Ok(()),
        Some((position, c)) => Err(InvalidField {
            field: field.to_string(),
            message: format!("{field} must not contain control or invisible characters, found U+{:04X} at character {}", u32::from(c), position + 1),
        }),
    }
}

fn readable(c: char) -> bool {
    use unicode_properties::{GeneralCategory as C, GeneralCategoryGroup, UnicodeGeneralCategory};
    c.general_category_group() != GeneralCategoryGroup::Other && !matches!(c.general_category(), C::LineSeparator | C::ParagraphSeparator)
}

/// Free text that must say something: not blank, at most `max_chars` characters, readable.
pub fn required_text(field: &str, value: &str, max_chars: usize) -> Result<(), InvalidField> {
    if value.trim().is_empty() {
        return Err(invalid(field, format!("{field} must not be blank")));
    }
    text(field, value, max_chars)
}

/// Text a machine reports (an HTTP error, a body it got back): 1 to `max_chars` characters and
/// not blank, whatever characters it holds.
pub fn reported_text(field: &str, value: &str, max_chars: usize) -> Result<(), InvalidField> {
    let chars = value.chars().count();
    if value.trim().is_empty() || chars > max_chars {
        return Err(invalid(field, format!("{field} must be 1 to {max_chars} characters and not blank, got {chars}")));
    }
    Ok(())
}

/// A number within `bounds` (both ends included).
pub fn within<T: PartialOrd + Display>(field: &str, value: T, bounds: RangeInclusive<T>) -> Result<(), InvalidField> {
    if bounds.contains(&value) {
        Ok(())
    } else {
        Err(invalid(field, format!("{field} must be between {} and {}, got {value}", bounds.start(), bounds.end())))
    }
}

/// A number of at least `min`, with no upper bound of its own (attempts, positions).
pub fn at_least<T: PartialOrd + Display>(field: &str, value: T, min: T) -> Result<(), InvalidField> {
    if value >= min { Ok(()) } else { Err(invalid(field, format!("{field} must be at least {min}, got {value}"))) }
}

/// How many items a list holds: `bounds` (both ends included).
pub fn count(field: &str, items: usize, bounds: RangeInclusive<usize>) -> Result<(), InvalidField> {
    if bounds.contains(&items) {
        Ok(())
    } else {
        Err(invalid(field, format!("{field} must hold {} to {} items, got {items}", bounds.start(), bounds.end())))
    }
}

/// A country is an officially assigned ISO 3166-1 alpha-2 code, exactly (`DE`, not `de`).
pub fn country(field: &str, code: &str) -> Result<(), InvalidField> {
    if is_assigned_alpha2(code) { Ok(()) } else { Err(invalid(field, format!("{field} {code:?} is not an ISO 3166-1 alpha-2 code"))) }
}

/// An [`InvalidField`] of `field` for a rule the functions above do not cover.
pub fn invalid(field: &str, message: impl Into<String>) -> InvalidField {
    InvalidField { field: field.to_string(), message: message.into() }
}

/// A currency is an ISO 4217 code: exactly three upper-case ASCII letters.
pub fn currency(currency: &str) -> Result<(), InvalidField> {
    if currency.len() == 3 && currency.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(InvalidField { field: "currency".to_string(), message: format!("currency {currency:?} must be 3 upper-case letters (ISO 4217)") })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_of_1_to_128_characters_are_valid() {
        for value in ["x".to_string(), "x".repeat(MAX_ID_CHARS), "o-1".to_string()] {
            assert_eq!(id("order_id", &value), Ok(()), "{value}");
        }
    }

    #[test]
    fn ids_count_characters_not_bytes() {
        let value = "ü".repeat(MAX_ID_CHARS);
        assert_eq!(value.len(), 2 * MAX_ID_CHARS);
        assert_eq!(id("order_id", &value), Ok(()));
        assert!(id("order_id", &"ü".repeat(MAX_ID_CHARS + 1)).is_err());
    }

    #[test]
    fn empty_and_overlong_ids_are_invalid_with_field_and_length() {
        let empty = id("customer_id", "").unwrap_err();
        assert_eq!(empty.field, "customer_id");
        assert_eq!(empty.to_string(), "customer_id must be 1 to 128 characters, got 0");
        let overlong = id("sku", &"s".repeat(MAX_ID_CHARS + 1)).unwrap_err();
        assert_eq!(overlong.field, "sku");
        assert_eq!(overlong.to_string(), "sku must be 1 to 128 characters, got 129");
        assert_eq!(String::from(overlong), "sku must be 1 to 128 characters, got 129");
    }

    #[test]
    fn blank_ids_and_invisible_or_control_characters_are_invalid() {
        for (value, reason) in [
            (" ", "must not be blank"),
            ("\u{3000}\t", "must not be blank"),
            ("o-\u{0}1", "U+0000 at character 3"),
            ("o-1\n", "U+000A at character 4"),
            ("\u{1b}[31mred", "U+001B at character 1"),
            ("abc\u{202e}fed", "U+202E at character 4"),
            ("o\u{200b}-1", "U+200B at character 2"),
            ("\u{feff}o-1", "U+FEFF at character 1"),
            ("o\u{2028}1", "U+2028 at character 2"),
            ("o-\u{e000}", "U+E000 at character 3"),
        ] {
            let error = id("order_id", value).unwrap_err();
            assert_eq!(error.field, "order_id");
            assert!(error.to_string().contains(reason), "{value:?}: {error}");
        }
    }

    #[test]
    fn free_text_is_bounded_and_readable() {
        assert_eq!(text("reason", "", 10), Ok(()));
        assert_eq!(text("reason", "zu spät, danke", 20), Ok(()));
        assert!(text("reason", "x".repeat(11).as_str(), 10).unwrap_err().to_string().contains("at most 10 characters, got 11"));
        assert!(text("shipping_address.street", "Main\u{202e}1", 50).unwrap_err().to_string().contains("U+202E at character 5"));
        assert!(text("recipient", "a@b\r\nBcc: x", 50).unwrap_err().to_string().contains("U+000D"));
    }

    #[test]
    fn readable_ids_in_any_script_are_valid() {
        for value in ["o-1", "Bestellung 7", "заказ-9", "注文_3", "sku/ä.ø", "a b", "🙂-order"] {
            assert_eq!(id("order_id", value), Ok(()), "{value}");
        }
    }

    #[test]
    fn numbers_counts_and_countries_name_the_field_and_the_bounds() {
        assert_eq!(within("quantity", 1, 1..=10), Ok(()));
        assert_eq!(within("quantity", 10, 1..=10), Ok(()));
        let zero = within("lines[0].quantity", 0, 1..=MAX_LINE_QUANTITY).unwrap_err();
        assert_eq!(zero.field, "lines[0].quantity");
        assert_eq!(zero.to_string(), "lines[0].quantity must be between 1 and 10000, got 0");
        assert_eq!(
            within("amount_cents", -1, 1..=MAX_AMOUNT_CENTS).unwrap_err().to_string(),
            "amount_cents must be between 1 and 1000000000000, got -1"
        );
        assert_eq!(at_least("attempts", 0, 1).unwrap_err().to_string(), "attempts must be at least 1, got 0");
        assert_eq!(count("lines", 0, 1..=MAX_ORDER_LINES).unwrap_err().to_string(), "lines must hold 1 to 100 items, got 0");
        assert_eq!(count("lines", 100, 1..=MAX_ORDER_LINES), Ok(()));
        assert_eq!(country("shipping_address.country", "DE"), Ok(()));
        assert_eq!(country("shipping_address.country", "UK").unwrap_err().field, "shipping_address.country");
    }

    #[test]
    fn required_and_reported_text_must_not_be_blank() {
        assert_eq!(required_text("shipping_address.city", " ", 10).unwrap_err().to_string(), "shipping_address.city must not be blank");
        assert!(required_text("shipping_address.city", "Berlin\u{0}", 10).is_err());
        assert_eq!(reported_text("error", "HTTP 500\n<html>", 20), Ok(()), "a machine's text may hold line breaks");
        assert!(reported_text("error", "", 20).unwrap_err().to_string().contains("error must be 1 to 20 characters"));
        assert!(reported_text("error", &"e".repeat(21), 20).is_err());
    }

    #[test]
    fn three_upper_case_ascii_letters_are_a_currency() {
        for value in ["EUR", "USD", "XXX"] {
            assert_eq!(currency(value), Ok(()), "{value}");
        }
    }

    #[test]
    fn anything_else_is_not_a_currency() {
        for value in ["", "EU", "EURO", "eur", "Eur", "E1R", "E R", "ÄUR", "ÉUR", "EÜ"] {
            let error = currency(value).unwrap_err();
            assert_eq!(error.field, "currency");
            assert_eq!(error.to_string(), format!("currency {value:?} must be 3 upper-case letters (ISO 4217)"));
        }
    }
}
