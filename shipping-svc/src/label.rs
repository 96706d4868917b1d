//! The warehouse's shipment label: one A6 page of PDF with the carrier, the tracking number,
//! the address and what goes in the parcel. Pure: the route in `read_model.rs` feeds it the
//! row. Written with `pdf-writer` and the base-14 Helvetica every PDF reader has, so nothing
//! is embedded and the text stays searchable.
use contracts::order::Address;
use contracts::shipment::ShipmentLine;
use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str};
use serde::{Deserialize, Serialize};

/// What a label shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Label {
    pub order_id: String,
    pub carrier: String,
    pub tracking_number: String,
    pub destination_country: String,
    /// `None` for shipments scheduled before addresses were recorded.
    pub ship_to: Option<Address>,
    pub lines: Vec<ShipmentLine>,
}

/// A6 in points (105 × 148 mm), the usual parcel label.
const PAGE: (f32, f32) = (298.0, 420.0);
const MARGIN: f32 = 18.0;
/// Lines beyond this many are summed up in one, so the text never runs off the page.
const MAX_LINES_SHOWN: usize = 12;

pub fn label_pdf(label: &Label) -> Vec<u8> {
    let (catalog, pages, page, content_id, regular, bold) = (Ref::new(1), Ref::new(2), Ref::new(3), Ref::new(4), Ref::new(5), Ref::new(6));
    let (regular_name, bold_name) = (Name(b"F1"), Name(b"F2"));
    let mut pdf = Pdf::new();
    pdf.catalog(catalog).pages(pages);
    pdf.pages(pages).kids([page]).count(1);
    let mut page_writer = pdf.page(page);
    page_writer.media_box(Rect::new(0.0, 0.0, PAGE.0, PAGE.1)).parent(pages).contents(content_id);
    page_writer.resources().fonts().pair(regular_name, regular).pair(bold_name, bold);
    page_writer.finish();
    for (id, font) in [(regular, b"Helvetica".as_slice()), (bold, b"Helvetica-Bold".as_slice())] {
        pdf.type1_font(id).base_font(Name(font)).encoding_predefined(Name(b"WinAnsiEncoding"));
    }

    let mut text = Text { content: Content::new(), y: PAGE.1 - MARGIN };
    text.line(bold_name, 20.0, &label.carrier);
    text.line(bold_name, 14.0, &label.tracking_number);
    text.line(regular_name, 9.0, &format!("Order {}", label.order_id));
    text.gap(10.0);
    text.line(bold_name, 10.0, "SHIP TO");
    match &label.ship_to {
        Some(address) => {
            text.line(regular_name, 12.0, &address.name);
            text.line(regular_name, 12.0, &address.street);
            text.line(regular_name, 12.0, &format!("{} {}", address.postal_code, address.city));
            text.line(bold_name, 12.0, &address.country);
        }
        None => {
            text.line(regular_name, 10.0, "(address not recorded)");
            text.line(bold_name, 12.0, &label.destination_country);
        }
    }
    text.gap(10.0);
    text.line(bold_name, 10.0, "CONTENTS");
    for line in label.lines.iter().take(MAX_LINES_SHOWN) {
        text.line(regular_name, 9.0, &format!("{} x {}", line.quantity, line.sku));
    }
    if label.lines.len() > MAX_LINES_SHOWN {
        text.line(regular_name, 9.0, &format!("... and {} more lines", label.lines.len() - MAX_LINES_SHOWN));
    }
    pdf.stream(content_id, &text.content.finish());
    pdf.finish()
}

/// Lines of text from the top of the page down.
struct Text {
    content: Content,
    y: f32,
}

impl Text {
    fn line(&mut self, font: Name, size: f32, value: &str) {
        self.y -= size * 1.25;
        let encoded = win_ansi(value);
        self.content.begin_text().set_font(font, size).next_line(MARGIN, self.y).show(Str(&encoded)).end_text();
    }

    fn gap(&mut self, points: f32) {
        self.y -= points;
    }
}

/// The bytes of `value` in WinAnsiEncoding, which the base-14 fonts read: Latin-1 letters as
/// they are (WinAnsi and Latin-1 agree from 0xA0 up), anything else as `?`.
fn win_ansi(value: &str) -> Vec<u8> {
    value
        .chars()
        .map(|c| match u32::from(c) {
            code @ (0x20..=0x7E | 0xA0..=0xFF) => code as u8,
            _ => b'?',
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(ship_to: Option<Address>, lines: usize) -> Label {
        Label {
            order_id: "o-1".into(),
            carrier: "DHL".into(),
            tracking_number: "DHL0123456789AB".into(),
            destination_country: "DE".into(),
            ship_to,
            lines: (0..lines).map(|i| ShipmentLine { sku: format!("sku-{i}"), quantity: 2 }).collect(),
        }
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|window| window == needle)
    }

    #[test]
    fn a_label_is_one_pdf_page_with_the_tracking_number_address_and_contents() {
        let address =
            Address { name: "Ada Müller".into(), street: "Main 1".into(), city: "Berlin".into(), postal_code: "10115".into(), country: "DE".into() };
        let pdf = label_pdf(&label(Some(address), 2));
        assert!(pdf.starts_with(b"%PDF-"), "a PDF");
        assert!(pdf.ends_with(b"%%EOF") || pdf.ends_with(b"%%EOF\n"), "a complete PDF");
        for text in [b"(DHL0123456789AB)".as_slice(), b"(Order o-1)", b"(10115 Berlin)", b"(2 x sku-1)", b"/Count 1"] {
            assert!(contains(&pdf, text), "{}", String::from_utf8_lossy(text));
        }
        // Not ASCII: written as a hex string of the WinAnsi bytes.
        let hex: String = b"Ada M\xfcller".iter().map(|byte| format!("{byte:02x}")).collect();
        assert!(contains(&pdf.to_ascii_lowercase(), format!("<{hex}>").as_bytes()), "Latin-1 letters print as themselves");
    }

    #[test]
    fn a_label_without_an_address_says_so_and_long_contents_are_summed_up() {
        let pdf = label_pdf(&label(None, MAX_LINES_SHOWN + 3));
        assert!(contains(&pdf, b"(address not recorded)"));
        assert!(contains(&pdf, b"(... and 3 more lines)"));
        assert!(!contains(&pdf, format!("x sku-{}", MAX_LINES_SHOWN).as_bytes()));
    }

    #[test]
    fn text_outside_win_ansi_becomes_question_marks() {
        assert_eq!(win_ansi("Zoë 東京\u{202e}"), b"Zo\xeb ???".to_vec());
    }
}
