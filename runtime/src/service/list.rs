//! The one list of the system's services (`services.tsv` at the top of the repository): name,
//! default HTTP port and crate of each, in start order. The scripts and the system tests read
//! the same file; a service finds its default port here by its crate name.

/// One line of `services.tsv`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceEntry {
    pub name: &'static str,
    pub port: u16,
    pub crate_name: &'static str,
}

const LIST: &str = include_str!("../../../services.tsv");

/// Every service, in start order.
pub fn services() -> Vec<ServiceEntry> {
    parse(LIST)
}

/// The entry of the service named `name`, if the list has one.
pub fn service(name: &str) -> Option<ServiceEntry> {
    services().into_iter().find(|entry| entry.name == name)
}

/// Lines are `name<TAB>port<TAB>crate`; `#` starts a comment line. The file is part of the
/// source: a malformed line is a build mistake, caught by this module's test, and skipped here.
fn parse(text: &'static str) -> Vec<ServiceEntry> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (name, port, crate_name) = (fields.next()?, fields.next()?.parse().ok()?, fields.next()?);
            Some(ServiceEntry { name, port, crate_name })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_of_the_list_parses_and_names_and_ports_are_unique() {
        let lines = LIST.lines().filter(|line| !line.trim().is_empty() && !line.trim_start().starts_with('#')).count();
        let services = services();
        assert_eq!(services.len(), lines, "a line of services.tsv does not parse");
        let mut names: Vec<_> = services.iter().map(|s| s.name).collect();
        let mut ports: Vec<_> = services.iter().map(|s| s.port).collect();
        names.sort_unstable();
        names.dedup();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!((names.len(), ports.len()), (services.len(), services.len()));
        assert_eq!(service("order-svc").map(|s| s.port), Some(8001));
        assert_eq!(service("no-such-svc"), None);
    }
}
