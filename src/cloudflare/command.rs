//! `tether export --cloudflare` and `tether import --cloudflare FILE`: the
//! files read, the pure conversions ([`super::export`], [`super::import`])
//! run, the answer printed. Exit codes: 0 done, 1 the input is wrong, 2 a
//! usage error.

use std::io::{Read, Write};
use std::path::Path;

use super::{export, import, object_id, types};
use crate::cli::Command;
use crate::config;

/// Lays the run-time changes the state file records over the file's
/// configuration (the owner of changes' rule, given by `main`); its lines
/// are printed on stderr.
pub type Overlay = fn(config::Config) -> (config::Config, Vec<String>);

/// Runs `command`; returns the process's exit code.
pub fn run(command: &Command, conf: Option<&str>, overlay: Overlay) -> i32 {
    match command {
        Command::Export { .. } => {
            let Some(path) = conf else {
                eprintln!("tether export: the configuration file is needed: tether export --cloudflare -c FILE");
                return 2;
            };
            match export_file(Path::new(path), overlay) {
                Ok(json) => {
                    // A closed pipe (`| head`) is not an error of ours.
                    let _ = writeln!(std::io::stdout(), "{json}");
                    0
                }
                Err(lines) => {
                    for l in lines {
                        eprintln!("{l}");
                    }
                    1
                }
            }
        }
        Command::Import { file, .. } => {
            let text = if file == "-" {
                let mut s = String::new();
                std::io::stdin().read_to_string(&mut s).map(|_| s)
            } else {
                std::fs::read_to_string(file)
            };
            let text = match text {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("tether import: {file}: {e}");
                    return 1;
                }
            };
            match import_text(&text) {
                Ok((yaml, notes)) => {
                    let _ = write!(std::io::stdout(), "{yaml}");
                    for l in notes {
                        eprintln!("{l}");
                    }
                    0
                }
                Err(e) => {
                    eprintln!("tether import: {file}: {e}");
                    1
                }
            }
        }
    }
}

/// The configuration file's objects, with the run-time objects `overlay`
/// lays over, as Cloudflare API JSON (pretty).
pub fn export_file(path: &Path, overlay: Overlay) -> Result<String, Vec<String>> {
    let loaded = config::load_file(path).map_err(|errors| {
        let mut lines = vec![format!(
            "tether export: {}: configuration errors:",
            path.display()
        )];
        lines.extend(errors.0.iter().map(|e| format!("  {e}")));
        lines
    })?;
    let (config, lines) = overlay(loaded.tether);
    for l in lines {
        eprintln!("tether export: {l}");
    }
    let all = export::all(&config, &|k, n| object_id(k, n));
    serde_json::to_string_pretty(&all).map_err(|e| vec![format!("tether export: {e}")])
}

/// `{monitors, pools, load_balancers}`, each the list of objects or the
/// API's whole answer for it (`{"success": true, "result": [...], ...}`, as
/// saved from `GET .../pools`).
pub fn read_export(text: &str) -> Result<types::Export, String> {
    let mut value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    for list in ["monitors", "pools", "load_balancers"] {
        if let Some(answer) = value.get_mut(list) {
            if let Some(result) = answer.get_mut("result") {
                *answer = result.take();
            }
        }
    }
    serde_json::from_value(value).map_err(|e| format!("not a Cloudflare export: {e}"))
}

/// A Cloudflare export's text → the `tether:` YAML and one line per field
/// not carried over (`dropped: <path>: why`, `not honoured: <path>: why`).
pub fn import_text(text: &str) -> Result<(String, Vec<String>), String> {
    let export = read_export(text)?;
    let (imported, notes) = import::all(&export);
    let yaml = import::to_yaml(&imported).map_err(|e| e.to_string())?;
    let mut lines: Vec<String> = notes
        .refused
        .iter()
        .map(|n| format!("not carried over (Tether cannot honour it; the default is written): {n}"))
        .collect();
    lines.extend(
        notes
            .dropped
            .iter()
            .map(|n| format!("not carried over: {n}")),
    );
    Ok((yaml, lines))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_export_takes_lists_or_the_apis_whole_answers() {
        let lists = r#"{"pools": [{"name": "p"}], "monitors": []}"#;
        let answers = r#"{"pools": {"success": true, "errors": [], "messages": [],
            "result": [{"name": "p"}], "result_info": {"count": 1}}}"#;
        let a = read_export(lists).expect("lists");
        assert_eq!(a, read_export(answers).expect("answers"));
        assert_eq!(a.pools[0].name.as_deref(), Some("p"));
        assert!(read_export("42").is_err());
        let (yaml, notes) = import_text(
            r#"{"pools": [{"name": "p", "origins":
            [{"name": "a", "address": "10.0.0.1", "port": 80}]}]}"#,
        )
        .expect("import");
        assert!(yaml.contains("address: 10.0.0.1:80"), "{yaml}");
        assert!(notes.is_empty(), "{notes:?}");
    }
}
