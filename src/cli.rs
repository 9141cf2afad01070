//! Tether's command line: its flags in Tether's words (`--help`) and
//! `--version`, parsed with clap and turned into Pingora's `Opt`. `-c`, `-t`,
//! `-d` and `-u` mean exactly what they mean to Pingora.

use clap::Parser;
use pingora::server::configuration::Opt;

/// Tether: a sticky load balancer for self-hosted services, on Pingora.
///
/// Pools of endpoints with health monitors and failover, Cloudflare-style
/// session affinity (cookie, ip_cookie, header, source_ip) with drains, an
/// admin API with a status page, Prometheus metrics, reload on SIGHUP and hot
/// upgrades without dropping a connection. conf/tether.yaml is the commented
/// reference; docs/operations.md says how to run it.
#[derive(Parser, Debug, Clone, PartialEq, Eq)]
#[command(name = "tether", version, about, long_about)]
pub struct Args {
    /// The YAML configuration file: Pingora's keys and the `tether:` section.
    #[arg(short = 'c', long = "conf", value_name = "FILE", global = true)]
    pub conf: Option<String>,

    /// Load and fully validate FILE, print "configuration OK" (exit 0) or every
    /// error with its key path (exit 1); start nothing.
    #[arg(short = 't', long = "test")]
    pub test: bool,

    /// Run in the background (writes Pingora's `pid_file`).
    #[arg(short = 'd', long = "daemon")]
    pub daemon: bool,

    /// Take the listening sockets over from the running instance (hot upgrade,
    /// through Pingora's `upgrade_sock`); see scripts/upgrade.sh.
    #[arg(short = 'u', long = "upgrade")]
    pub upgrade: bool,

    /// Pingora's test-harness flag (hidden).
    #[arg(long, hide = true)]
    pub nocapture: bool,

    /// Instead of running: convert between Cloudflare's Load Balancing API
    /// and the configuration file (docs/cloudflare-api.md).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The one-shot commands: they print and exit, starting nothing.
#[derive(clap::Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Print the configuration given with -c (and the run-time changes its
    /// state file records) as Cloudflare API JSON: {monitors, pools,
    /// load_balancers}, each object as the API's `result`.
    Export {
        /// Cloudflare's v4 Load Balancing API JSON (the only format).
        #[arg(long, required = true)]
        cloudflare: bool,
    },
    /// Turn a Cloudflare export (JSON: {monitors, pools, load_balancers} as
    /// the API returns them) into a `tether:` YAML section on stdout; every
    /// field it cannot carry over is named on stderr, one line each.
    Import {
        /// Read Cloudflare's v4 Load Balancing API JSON.
        #[arg(long, required = true)]
        cloudflare: bool,
        /// The JSON file (`-`: stdin).
        #[arg(value_name = "FILE")]
        file: String,
    },
}

impl Args {
    /// Pingora's options, the same flags.
    pub fn into_opt(self) -> Opt {
        Opt {
            upgrade: self.upgrade,
            daemon: self.daemon,
            nocapture: self.nocapture,
            test: self.test,
            conf: self.conf,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_short_flags_are_pingoras() {
        let args = Args::try_parse_from(["tether", "-c", "f.yaml", "-t", "-d", "-u"]).unwrap();
        let opt = args.into_opt();
        assert_eq!(opt.conf.as_deref(), Some("f.yaml"));
        assert!(opt.test && opt.daemon && opt.upgrade && !opt.nocapture);
        let export = Args::try_parse_from(["tether", "export", "--cloudflare", "-c", "f"]).unwrap();
        assert_eq!(export.command, Some(Command::Export { cloudflare: true }));
        assert_eq!(export.conf.as_deref(), Some("f"));
        let import = Args::try_parse_from(["tether", "import", "--cloudflare", "x.json"]).unwrap();
        assert_eq!(
            import.command,
            Some(Command::Import {
                cloudflare: true,
                file: "x.json".into()
            })
        );
        assert!(Args::try_parse_from(["tether", "import", "x.json"]).is_err());
        let long = Args::try_parse_from(["tether", "--conf", "g", "--daemon"]).unwrap();
        assert_eq!(long.conf.as_deref(), Some("g"));
        assert!(Args::try_parse_from(["tether", "--nope"]).is_err());
    }

    #[test]
    fn clap_finds_no_conflict() {
        use clap::CommandFactory;
        Args::command().debug_assert();
    }
}
