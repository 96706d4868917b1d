//! The message texts: one template per notification kind and channel, rendered with the
//! command's fields. The built-in set (`notify-svc/templates/`) is compiled into the binary;
//! `NOTIFY_TEMPLATES_DIR` names a folder of the operator's that replaces it, whole.
//!
//! Everything that can be wrong with a folder is found when it loads, so the service refuses to
//! start instead of failing notification after notification: a missing template, one that does
//! not parse, one that uses a variable its kind does not have, or a `.txt` file whose name is no
//! template's (a typo would otherwise leave the built-in text in use unnoticed). Each template is
//! also rendered once with sample values, which finds what parsing cannot (an unknown filter).
//!
//! File names are `<kind>.<channel>.txt` in lower case (`order_confirmed.email.txt`). Every
//! template gets `order_id`, `customer_id`, `kind`, `channel` and `recipient`, and its kind's
//! [`NotificationKind::fields`]. Templates are plain text (no HTML escaping); as in Jinja, the
//! file's final line break is not part of the message.
use contracts::notification::{Channel, NotificationKind};
use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The environment variable naming the operator's templates folder; unset or empty: built-in.
pub const TEMPLATES_DIR_ENV: &str = "NOTIFY_TEMPLATES_DIR";

/// The variables every template gets, whatever its kind.
pub const COMMON_VARIABLES: [&str; 5] = ["order_id", "customer_id", "kind", "channel", "recipient"];

/// The built-in templates, by file name.
const BUILT_IN: [(&str, &str); 16] = [
    ("order_confirmed.email.txt", include_str!("../templates/order_confirmed.email.txt")),
    ("order_confirmed.sms.txt", include_str!("../templates/order_confirmed.sms.txt")),
    ("order_cancelled.email.txt", include_str!("../templates/order_cancelled.email.txt")),
    ("order_cancelled.sms.txt", include_str!("../templates/order_cancelled.sms.txt")),
    ("order_shipped.email.txt", include_str!("../templates/order_shipped.email.txt")),
    ("order_shipped.sms.txt", include_str!("../templates/order_shipped.sms.txt")),
    ("refund_issued.email.txt", include_str!("../templates/refund_issued.email.txt")),
    ("refund_issued.sms.txt", include_str!("../templates/refund_issued.sms.txt")),
    ("order_cancellation_refused.email.txt", include_str!("../templates/order_cancellation_refused.email.txt")),
    ("order_cancellation_refused.sms.txt", include_str!("../templates/order_cancellation_refused.sms.txt")),
    ("stock_low.email.txt", include_str!("../templates/stock_low.email.txt")),
    ("stock_low.sms.txt", include_str!("../templates/stock_low.sms.txt")),
    ("shipment_out_for_delivery.email.txt", include_str!("../templates/shipment_out_for_delivery.email.txt")),
    ("shipment_out_for_delivery.sms.txt", include_str!("../templates/shipment_out_for_delivery.sms.txt")),
    ("shipment_delivery_failed.email.txt", include_str!("../templates/shipment_delivery_failed.email.txt")),
    ("shipment_delivery_failed.sms.txt", include_str!("../templates/shipment_delivery_failed.sms.txt")),
];

/// A complete, checked set of templates: one for every (kind, channel).
#[derive(Debug)]
pub struct Templates {
    env: Environment<'static>,
    /// Where the templates came from, to name a file in errors.
    folder: Option<PathBuf>,
}

/// What one message is rendered from.
#[derive(Debug, Clone, Copy)]
pub struct MessageValues<'a> {
    pub kind: NotificationKind,
    pub channel: Channel,
    pub order_id: &'a str,
    pub customer_id: &'a str,
    pub recipient: &'a str,
    /// The command's fields: exactly the kind's, as the contract validates.
    pub fields: &'a BTreeMap<String, String>,
}

/// Why a templates folder cannot be used; each names the file and what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("{TEMPLATES_DIR_ENV}={}: cannot list the folder: {source}", dir.display())]
    Folder { dir: PathBuf, source: std::io::Error },
    #[error("{}: no such template; the folder must hold one for every kind and channel", file.display())]
    Missing { file: PathBuf },
    #[error("{}: cannot be read: {source}", file.display())]
    Unreadable { file: PathBuf, source: std::io::Error },
    #[error("{}: not the name of a template; names are <kind>.<channel>.txt with kind one of {} and channel email or sms", file.display(), kind_names())]
    UnknownName { file: PathBuf },
    #[error("{}{}: {reason}", file.display(), at_line(*line))]
    Broken { file: PathBuf, line: Option<usize>, reason: String },
    #[error("{}: uses `{variable}`, which {} notifications do not have (theirs: {})", file.display(), kind_name(*kind), variables(*kind).join(", "))]
    UnknownVariable { file: PathBuf, variable: String, kind: NotificationKind },
}

/// A message that could not be rendered. Load-time checks make this rare: only values the
/// samples did not foresee can get here.
#[derive(Debug, thiserror::Error)]
#[error("the template {file}{} does not render: {reason}", at_line(*line))]
pub struct RenderError {
    pub file: String,
    pub line: Option<usize>,
    pub reason: String,
}

impl Templates {
    /// The folder `NOTIFY_TEMPLATES_DIR` names, else the built-in templates.
    pub fn from_env() -> Result<Templates, TemplateError> {
        match std::env::var_os(TEMPLATES_DIR_ENV) {
            Some(dir) if !dir.is_empty() => Templates::from_folder(Path::new(&dir)),
            _ => Templates::built_in(),
        }
    }

    /// The templates compiled into the binary, checked like a folder (the tests load them).
    pub fn built_in() -> Result<Templates, TemplateError> {
        let sources = pairs().map(|(kind, channel)| {
            let name = file_name(kind, channel);
            let source = BUILT_IN.iter().find(|(built_in, _)| *built_in == name).map(|(_, source)| source.to_string());
            source.ok_or_else(|| TemplateError::Missing { file: built_in_path(&name) })
        });
        Templates::compile(None, sources.collect::<Result<_, _>>()?)
    }

    /// Every template from `dir`, which must hold all of them and no other `.txt` file. Other
    /// files (a README, an editor's backup) are left alone.
    pub fn from_folder(dir: &Path) -> Result<Templates, TemplateError> {
        let folder_error = |source| TemplateError::Folder { dir: dir.to_path_buf(), source };
        let known: BTreeSet<String> = pairs().map(|(kind, channel)| file_name(kind, channel)).collect();
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(folder_error)? {
            names.push(entry.map_err(folder_error)?.file_name());
        }
        // Sorted, so that the same folder always reports the same first problem.
        names.sort();
        // A stray name first: it is most often the cause of a missing one (a typo).
        if let Some(stray) = names.iter().find(|name| {
            let name = name.to_string_lossy();
            name.ends_with(".txt") && !known.contains(name.as_ref())
        }) {
            return Err(TemplateError::UnknownName { file: dir.join(stray) });
        }
        let mut sources = Vec::new();
        for (kind, channel) in pairs() {
            let file = dir.join(file_name(kind, channel));
            match std::fs::read_to_string(&file) {
                Ok(source) => sources.push(source),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Err(TemplateError::Missing { file }),
                Err(source) => return Err(TemplateError::Unreadable { file, source }),
            }
        }
        Templates::compile(Some(dir.to_path_buf()), sources)
    }

    /// Parses `sources` (one per pair, in [`pairs`] order) and checks each template.
    fn compile(folder: Option<PathBuf>, sources: Vec<String>) -> Result<Templates, TemplateError> {
        let mut env = Environment::new();
        // An unknown variable is an error, not an empty string: a hole in a message goes unseen.
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // Plain text: an `&` in a carrier's name stays an `&`.
        env.set_auto_escape_callback(|_| AutoEscape::None);
        let mut templates = Templates { env, folder };
        for ((kind, channel), source) in pairs().zip(sources) {
            let name = file_name(kind, channel);
            if let Err(error) = templates.env.add_template_owned(name.clone(), source) {
                return Err(templates.broken(&name, &error));
            }
        }
        for (kind, channel) in pairs() {
            templates.check(kind, channel)?;
        }
        Ok(templates)
    }

    /// Refuses a template that uses a variable its kind does not have (on any branch: this is
    /// the parsed template's, not one rendering's), fails to render with sample values, or
    /// renders nothing.
    fn check(&self, kind: NotificationKind, channel: Channel) -> Result<(), TemplateError> {
        let name = file_name(kind, channel);
        let template = self.env.get_template(&name).map_err(|error| self.broken(&name, &error))?;
        let provided = variables(kind);
        // Built-in functions such as `range` are globals; they are not the template's to fill.
        let globals: BTreeSet<&str> = self.env.globals().map(|(global, _)| global).collect();
        let mut unknown: Vec<String> = template
            .undeclared_variables(false)
            .into_iter()
            .filter(|used| !provided.contains(&used.as_str()) && !globals.contains(used.as_str()))
            .collect();
        unknown.sort();
        if let Some(variable) = unknown.into_iter().next() {
            return Err(TemplateError::UnknownVariable { file: self.path(&name), variable, kind });
        }
        let fields = kind.fields().iter().map(|field| (field.to_string(), sample(field).to_string())).collect();
        let recipient = match channel {
            Channel::Email => "ada@example.com",
            Channel::Sms => "+49 30 123",
        };
        let values = MessageValues { kind, channel, order_id: "o-1", customer_id: "c-1", recipient, fields: &fields };
        let message = self.render_raw(&name, &values).map_err(|error| self.broken(&name, &error))?;
        if message.trim().is_empty() {
            return Err(TemplateError::Broken { file: self.path(&name), line: None, reason: "renders an empty message".into() });
        }
        Ok(())
    }

    /// The message of `values.kind` on `values.channel`. Pure: the same values give the same text.
    pub fn render(&self, values: &MessageValues<'_>) -> Result<String, RenderError> {
        let name = file_name(values.kind, values.channel);
        self.render_raw(&name, values).map_err(|error| RenderError { file: name, line: error.line(), reason: reason(&error) })
    }

    fn render_raw(&self, name: &str, values: &MessageValues<'_>) -> Result<String, minijinja::Error> {
        let kind: &'static str = values.kind.into();
        let channel: &'static str = values.channel.into();
        let mut context: BTreeMap<String, String> = values.fields.clone();
        for (variable, value) in [
            ("order_id", values.order_id),
            ("customer_id", values.customer_id),
            ("kind", kind),
            ("channel", channel),
            ("recipient", values.recipient),
        ] {
            context.insert(variable.to_string(), value.to_string());
        }
        self.env.get_template(name)?.render(context)
    }

    fn broken(&self, name: &str, error: &minijinja::Error) -> TemplateError {
        TemplateError::Broken { file: self.path(name), line: error.line(), reason: reason(error) }
    }

    fn path(&self, name: &str) -> PathBuf {
        match &self.folder {
            Some(dir) => dir.join(name),
            None => built_in_path(name),
        }
    }
}

/// The file name of the template of (`kind`, `channel`): `order_confirmed.email.txt`.
pub fn file_name(kind: NotificationKind, channel: Channel) -> String {
    let kind: &'static str = kind.into();
    let channel: &'static str = channel.into();
    format!("{}.{}.txt", kind.to_ascii_lowercase(), channel.to_ascii_lowercase())
}

/// Every (kind, channel), in declaration order.
pub fn pairs() -> impl Iterator<Item = (NotificationKind, Channel)> {
    NotificationKind::ALL.into_iter().flat_map(|kind| Channel::ALL.into_iter().map(move |channel| (kind, channel)))
}

/// The variables a template of `kind` gets: the common ones, then its fields.
pub fn variables(kind: NotificationKind) -> Vec<&'static str> {
    COMMON_VARIABLES.iter().chain(kind.fields()).copied().collect()
}

fn kind_name(kind: NotificationKind) -> &'static str {
    kind.into()
}

/// A plausible value of each field, for the check at load time.
fn sample(field: &str) -> &'static str {
    match field {
        "carrier" => "DHL",
        "tracking_number" => "DHL0123456789",
        "reason" => "OUT_OF_STOCK",
        "detail" => "sku sku-1: requested 5, available 2",
        "amount" => "12.34 EUR",
        "sku" => "sku-1",
        "available" => "3",
        "threshold" => "5",
        "location" => "Berlin",
        _ => "sample",
    }
}

fn built_in_path(name: &str) -> PathBuf {
    Path::new("notify-svc/templates (built in)").join(name)
}

fn kind_names() -> String {
    NotificationKind::ALL.into_iter().map(|kind| kind_name(kind).to_ascii_lowercase()).collect::<Vec<_>>().join(", ")
}

fn at_line(line: Option<usize>) -> String {
    line.map(|line| format!(", line {line}")).unwrap_or_default()
}

/// minijinja's reason without its own "(in file:line)", which the errors above say their way.
fn reason(error: &minijinja::Error) -> String {
    match error.detail() {
        Some(detail) => format!("{}: {detail}", error.kind()),
        None => error.kind().to_string(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A fresh folder under the system's temp folder, unique to this process and `name`.
    fn folder(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("notify-templates-{}-{name}", std::process::id()));
        std::fs::remove_dir_all(&dir).ok();
        dir
    }

    /// Writes the built-in templates into `dir`, as an operator would start a folder of theirs.
    pub(crate) fn copy_built_in(dir: &Path) {
        std::fs::create_dir_all(dir).expect("create the folder");
        for (name, source) in BUILT_IN {
            std::fs::write(dir.join(name), source).expect("write a template");
        }
    }

    /// The built-in templates in a folder, with `change` applied, loaded.
    fn load_changed(name: &str, change: impl FnOnce(&Path)) -> (PathBuf, Result<Templates, TemplateError>) {
        let dir = folder(name);
        copy_built_in(&dir);
        change(&dir);
        let loaded = Templates::from_folder(&dir);
        std::fs::remove_dir_all(&dir).ok();
        (dir, loaded)
    }

    fn values<'a>(kind: NotificationKind, channel: Channel, fields: &'a BTreeMap<String, String>) -> MessageValues<'a> {
        MessageValues { kind, channel, order_id: "o-1", customer_id: "c-1", recipient: "ada@example.com", fields }
    }

    fn fields(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect()
    }

    #[test]
    fn the_built_in_set_is_one_file_per_kind_and_channel() {
        let expected: BTreeSet<String> = pairs().map(|(kind, channel)| file_name(kind, channel)).collect();
        let built_in: BTreeSet<String> = BUILT_IN.iter().map(|(name, _)| name.to_string()).collect();
        assert_eq!(built_in, expected);
        let on_disk: BTreeSet<String> = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("templates"))
            .expect("notify-svc/templates")
            .map(|entry| entry.expect("an entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(on_disk, expected, "every file in notify-svc/templates is compiled in");
        assert_eq!(file_name(NotificationKind::StockLow, Channel::Sms), "stock_low.sms.txt");
    }

    #[test]
    fn the_built_in_templates_load_and_render_every_pair_without_a_final_line_break() {
        let templates = Templates::built_in().expect("the built-in templates load");
        for (kind, channel) in pairs() {
            let fields = kind.fields().iter().map(|field| (field.to_string(), sample(field).to_string())).collect();
            let message = templates.render(&values(kind, channel, &fields)).expect("renders");
            assert!(!message.trim().is_empty() && !message.ends_with('\n'), "{kind:?} {channel:?}: {message:?}");
            assert!(message.contains("o-1") || !kind.is_about_an_order(), "{kind:?} {channel:?} names the order: {message:?}");
            for field in kind.fields() {
                // Every fact the policy passes shows in the e-mail; an SMS may leave some out.
                if channel == Channel::Email {
                    assert!(message.contains(sample(field)), "{kind:?} e-mail shows {field}: {message:?}");
                }
            }
        }
    }

    #[test]
    fn the_built_in_email_texts_say_what_they_always_said() {
        use NotificationKind::*;
        let templates = Templates::built_in().expect("the built-in templates load");
        let email = |kind, pairs: &[(&str, &str)]| templates.render(&values(kind, Channel::Email, &fields(pairs))).expect("renders");
        assert_eq!(
            email(OrderConfirmed, &[("carrier", "DHL"), ("tracking_number", "DHLABC")]),
            "Your order o-1 is confirmed and will ship with DHL (tracking number DHLABC)."
        );
        assert_eq!(
            email(OrderCancelled, &[("reason", "OUT_OF_STOCK"), ("detail", "sku sku-1: requested 5, available 2")]),
            "Your order o-1 was cancelled because an item is out of stock (OUT_OF_STOCK: sku sku-1: requested 5, available 2)."
        );
        for (code, because) in [
            ("PAYMENT_DECLINED", "the payment was declined"),
            ("SHIPPING_UNAVAILABLE", "we cannot ship to your address"),
            ("CUSTOMER_REQUEST", "you asked us to"),
            ("TIMEOUT", "we could not complete it in time"),
        ] {
            assert_eq!(
                email(OrderCancelled, &[("reason", code), ("detail", "")]),
                format!("Your order o-1 was cancelled because {because} ({code}).")
            );
        }
        assert_eq!(email(OrderShipped, &[]), "Your order o-1 has been shipped.");
        assert_eq!(email(RefundIssued, &[("amount", "12.05 EUR")]), "A refund of 12.05 EUR for your order o-1 has been issued.");
        assert_eq!(
            email(OrderCancellationRefused, &[("reason", "shipment already dispatched")]),
            "Your order o-1 can no longer be cancelled: it is already on its way (shipment already dispatched)."
        );
        assert_eq!(
            email(StockLow, &[("sku", "SKU-A"), ("available", "3"), ("threshold", "5")]),
            "Stock of SKU-A is low: 3 available, below the threshold of 5."
        );
        assert_eq!(email(ShipmentOutForDelivery, &[("location", "Berlin")]), "Your order o-1 is out for delivery (last seen: Berlin).");
        assert_eq!(
            email(ShipmentDeliveryFailed, &[("location", "Berlin")]),
            "The carrier could not deliver your order o-1 (Berlin); they will try again or leave a notice."
        );
        // Plain text: nothing is HTML-escaped.
        assert_eq!(
            email(ShipmentOutForDelivery, &[("location", "<Tom & Jerry's>")]),
            "Your order o-1 is out for delivery (last seen: <Tom & Jerry's>)."
        );
    }

    #[test]
    fn a_folder_of_the_operators_replaces_the_texts() {
        let (_, loaded) = load_changed("custom", |dir| {
            let text = "Hello {{ recipient }}, {{ kind }} by {{ channel }} for {{ customer_id }}: {{ order_id }} ships with {{ carrier | upper }}.\n";
            std::fs::write(dir.join("order_confirmed.email.txt"), text).expect("write");
            // Not a template: left alone.
            std::fs::write(dir.join("README.md"), "our texts").expect("write");
        });
        let templates = loaded.expect("the folder loads");
        let message = templates
            .render(&values(NotificationKind::OrderConfirmed, Channel::Email, &fields(&[("carrier", "dhl"), ("tracking_number", "T1")])))
            .expect("renders");
        assert_eq!(message, "Hello ada@example.com, ORDER_CONFIRMED by EMAIL for c-1: o-1 ships with DHL.");
    }

    #[test]
    fn a_missing_template_is_refused() {
        let (dir, loaded) = load_changed("missing", |dir| std::fs::remove_file(dir.join("refund_issued.sms.txt")).expect("remove"));
        let error = loaded.expect_err("a template is missing");
        assert!(matches!(&error, TemplateError::Missing { file } if *file == dir.join("refund_issued.sms.txt")), "{error:?}");
        assert!(error.to_string().contains("refund_issued.sms.txt: no such template"), "{error}");
    }

    #[test]
    fn a_template_that_does_not_parse_is_refused_with_its_file_and_line() {
        let (dir, loaded) = load_changed("syntax", |dir| {
            std::fs::write(dir.join("stock_low.sms.txt"), "Low stock:\n{{ sku }} is at\n{% if available %} {{ available }}\n").expect("write")
        });
        let error = loaded.expect_err("a syntax error");
        let TemplateError::Broken { file, line, reason } = &error else { panic!("{error:?}") };
        assert_eq!((file, *line), (&dir.join("stock_low.sms.txt"), Some(3)), "{error}");
        assert!(reason.starts_with("syntax error: unexpected end of input"), "{reason}");
        let shown = error.to_string();
        assert!(shown.contains("stock_low.sms.txt, line 3: syntax error"), "{shown}");
        // Said once, in the service's words, not again in minijinja's.
        assert!(!shown.contains("(in "), "{shown}");

        let (_, loaded) =
            load_changed("unclosed", |dir| std::fs::write(dir.join("order_shipped.email.txt"), "Your order {{ order_id").expect("write"));
        let error = loaded.expect_err("an unclosed expression").to_string();
        assert!(error.contains("order_shipped.email.txt, line 1: syntax error"), "{error}");
    }

    #[test]
    fn a_template_using_a_variable_its_kind_does_not_have_is_refused_on_any_branch() {
        let (_, loaded) = load_changed("variable", |dir| {
            // `carrier` is an ORDER_CONFIRMED field, not an ORDER_SHIPPED one; the branch is never
            // taken with real values, and is refused all the same.
            let text = "Your order {{ order_id }} has been shipped{% if kind == 'nothing' %} with {{ carrier }}{% endif %}.";
            std::fs::write(dir.join("order_shipped.sms.txt"), text).expect("write")
        });
        let error = loaded.expect_err("an unknown variable");
        assert!(
            matches!(&error, TemplateError::UnknownVariable { variable, kind: NotificationKind::OrderShipped, .. } if variable == "carrier"),
            "{error:?}"
        );
        let shown = error.to_string();
        assert!(
            shown.ends_with(
                "order_shipped.sms.txt: uses `carrier`, which ORDER_SHIPPED notifications do not have (theirs: order_id, customer_id, kind, channel, recipient)"
            ),
            "{shown}"
        );
        // Variables a template sets itself, and loop variables, are its own.
        let (_, loaded) = load_changed("own-variables", |dir| {
            let text = "{% set n = 2 %}{% for i in range(n) %}{{ loop.index }}{{ i }}{% endfor %} {{ order_id }}";
            std::fs::write(dir.join("order_shipped.sms.txt"), text).expect("write")
        });
        loaded.expect("a template's own variables are fine");
    }

    #[test]
    fn a_template_that_fails_to_render_or_renders_nothing_is_refused() {
        let (_, loaded) =
            load_changed("filter", |dir| std::fs::write(dir.join("order_shipped.email.txt"), "\n{{ order_id | shout }}").expect("write"));
        let error = loaded.expect_err("an unknown filter").to_string();
        assert!(error.contains("order_shipped.email.txt, line 2: unknown filter"), "{error}");
        let (_, loaded) = load_changed("empty", |dir| std::fs::write(dir.join("order_shipped.email.txt"), "{# nothing #}\n").expect("write"));
        let error = loaded.expect_err("an empty message").to_string();
        assert!(error.contains("order_shipped.email.txt: renders an empty message"), "{error}");
    }

    #[test]
    fn a_txt_file_that_names_no_template_is_refused() {
        let (dir, loaded) =
            load_changed("typo", |dir| std::fs::rename(dir.join("order_confirmed.email.txt"), dir.join("order_confirmd.email.txt")).expect("rename"));
        let error = loaded.expect_err("a typo");
        assert!(matches!(&error, TemplateError::UnknownName { file } if *file == dir.join("order_confirmd.email.txt")), "{error:?}");
        assert!(error.to_string().contains("order_confirmd.email.txt: not the name of a template"), "{error}");
    }

    #[test]
    fn a_folder_that_cannot_be_listed_is_refused() {
        let dir = folder("absent");
        let error = Templates::from_folder(&dir).expect_err("no such folder").to_string();
        assert!(error.starts_with(&format!("{TEMPLATES_DIR_ENV}={}: cannot list the folder", dir.display())), "{error}");
    }

    #[test]
    fn rendering_is_deterministic_and_a_render_error_names_the_template() {
        let templates = Templates::built_in().expect("the built-in templates load");
        let confirmed = fields(&[("carrier", "DHL"), ("tracking_number", "T1")]);
        let once = templates.render(&values(NotificationKind::OrderConfirmed, Channel::Sms, &confirmed)).expect("renders");
        assert_eq!(templates.render(&values(NotificationKind::OrderConfirmed, Channel::Sms, &confirmed)).expect("renders"), once);
        // Only values the contract refuses can get here: a field missing.
        let error = templates.render(&values(NotificationKind::OrderConfirmed, Channel::Sms, &fields(&[("carrier", "DHL")]))).expect_err("undefined");
        assert!(error.to_string().starts_with("the template order_confirmed.sms.txt, line 1 does not render: undefined value"), "{error}");
    }
}
