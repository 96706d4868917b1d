//! Field rules every decider applies to the commands it receives, in one place: ids and
//! currency codes. Pure functions; each decider turns an [`InvalidField`] into its own
//! rejection (`Rejection::Invalid(error.to_string())`).

/// Longest id (order, customer, SKU), in characters (Unicode scalar values, not bytes).
pub const MAX_ID_CHARS: usize = 128;

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

/// An id is 1 to [`MAX_ID_CHARS`] characters.
pub fn id(field: &str, value: &str) -> Result<(), InvalidField> {
    let chars = value.chars().count();
    if (1..=MAX_ID_CHARS).contains(&chars) {
        Ok(())
    } else {
        Err(InvalidField { field: field.to_string(), message: format!("{field} must be 1 to {MAX_ID_CHARS} characters, got {chars}") })
    }
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
