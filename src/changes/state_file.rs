//! The state file on disk (`tether.state_file`): read at start, written
//! atomically (a temporary file in the same directory, flushed, renamed over
//! the old one, the directory flushed) before a run-time change is applied.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value as Json;

use super::records::{Records, VERSION};
use crate::config::{directory, Config};

/// Where the records live.
#[derive(Debug, Clone)]
pub struct StateFile {
    path: PathBuf,
}

/// What reading the file found.
#[derive(Debug)]
pub enum Read {
    /// No file yet: a first start.
    Missing,
    /// The records, and whether they came from an older format (then the
    /// file is rewritten in the current one).
    Records { records: Records, old_format: bool },
}

impl StateFile {
    pub fn new(path: &Path) -> Self {
        StateFile {
            path: path.to_path_buf(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the records; `config` is the file's configuration, needed to
    /// read a version 1 file. An unreadable or foreign file is an error the
    /// caller reports (and then starts from the configuration).
    pub fn read(&self, config: &Config) -> Result<Read, String> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Read::Missing),
            Err(e) => return Err(format!("cannot read it: {e}")),
        };
        let json: Json =
            serde_json::from_str(&text).map_err(|e| format!("not a Tether state file: {e}"))?;
        match json.get("version").and_then(Json::as_u64) {
            Some(1) => Ok(Read::Records {
                records: Records::from_v1(&json, config)?,
                old_format: true,
            }),
            // Version 2 is version 3 without objects.
            Some(v) if v == 2 || v == u64::from(VERSION) => {
                let mut records: Records = serde_json::from_value(json)
                    .map_err(|e| format!("not a Tether state file: {e}"))?;
                if records.version == 2 && !records.objects.is_empty() {
                    return Err("version 2 has no objects".to_string());
                }
                records.version = VERSION;
                Ok(Read::Records {
                    records,
                    old_format: false,
                })
            }
            Some(v) => Err(format!(
                "version {v} is not one this Tether reads (1 to {VERSION})"
            )),
            None => Err("not a Tether state file: no version".to_string()),
        }
    }

    /// Writes `records` atomically; on error the old file is untouched.
    /// Without objects the file is version 2, which a Tether from before
    /// objects reads too (a hot upgrade back to it keeps the records).
    pub fn write(&self, records: &Records) -> Result<(), String> {
        let mut records = std::borrow::Cow::Borrowed(records);
        if records.objects.is_empty() {
            records.to_mut().version = 2;
        }
        let text = serde_json::to_string_pretty(&*records).map_err(|e| e.to_string())?;
        let tmp = self
            .path
            .with_extension(format!("tmp.{}", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(text.as_bytes())?;
            file.write_all(b"\n")?;
            file.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            std::fs::File::open(directory(&self.path))?.sync_all()?;
            Ok(())
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            format!("cannot write the state file {}: {e}", self.path.display())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OriginSteering;
    use crate::state::fixtures::{config, pool};

    #[test]
    fn writes_are_atomic_and_read_back() {
        let dir = tempfile::TempDir::new().unwrap();
        let file = StateFile::new(&dir.path().join("state.json"));
        let cfg = config(vec![pool("p", 2, OriginSteering::Random)], &["p"], None);
        assert!(matches!(file.read(&cfg), Ok(Read::Missing)));
        let mut records = Records::default();
        records.set_endpoint_weight("p", "p-0", 0.5, 1.0);
        for _ in 0..3 {
            file.write(&records).unwrap();
        }
        match file.read(&cfg).unwrap() {
            Read::Records {
                records: read,
                old_format,
            } => {
                assert_eq!(read, records);
                assert!(!old_format);
            }
            other => panic!("{other:?}"),
        }
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            vec!["state.json".to_string()],
            "no temporary file left"
        );
    }

    #[test]
    fn foreign_files_are_errors_not_panics() {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("state.json");
        let file = StateFile::new(&path);
        let cfg = config(vec![pool("p", 2, OriginSteering::Random)], &["p"], None);
        for text in [
            "{ not json",
            "[]",
            r#"{"version": 9}"#,
            r#"{"version": 2, "x": 1}"#,
        ] {
            std::fs::write(&path, text).unwrap();
            assert!(file.read(&cfg).is_err(), "{text}");
        }
    }

    #[test]
    fn a_missing_directory_is_a_write_error() {
        let dir = tempfile::TempDir::new().unwrap();
        let missing = dir.path().join("no/such/dir/s.json");
        let file = StateFile::new(&missing);
        let e = file.write(&Records::default()).unwrap_err();
        assert!(e.starts_with("cannot write the state file"), "{e}");
    }
}
