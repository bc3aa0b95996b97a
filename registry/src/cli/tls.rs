//! `waymark tls ca create` and `waymark tls cert create`: a small local CA and the node
//! certificates its `[tls]` tables name, for clusters without a PKI of their own (as
//! `consul tls ca|cert create`). Keys are written owner-readable only; nothing is
//! replaced silently.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::tls::generate::{LocalCa, DEFAULT_DAYS};

#[derive(Debug, Subcommand)]
pub(super) enum TlsCommand {
    /// The cluster's CA.
    #[command(subcommand)]
    Ca(CaCommand),
    /// Node certificates signed by that CA.
    #[command(subcommand)]
    Cert(CertCommand),
}

#[derive(Debug, Subcommand)]
pub(super) enum CaCommand {
    /// Create a new ECDSA P-256 CA: DIR/ca.pem (give it to every node as `[tls]
    /// ca_file` and to clients as --ca-file) and DIR/ca-key.pem (keep it offline).
    Create(CaCreateArgs),
}

#[derive(Debug, Subcommand)]
pub(super) enum CertCommand {
    /// Create a node certificate and key signed by the CA: DIR/NAME.pem and
    /// DIR/NAME-key.pem (`[tls] cert_file` and `key_file`). It serves the client API
    /// and dials peers, so it allows both server and client authentication.
    Create(CertCreateArgs),
}

#[derive(Debug, Args)]
pub(super) struct CaCreateArgs {
    /// Where to write ca.pem and ca-key.pem (created if missing; existing files are
    /// never replaced).
    #[arg(long, default_value = ".", value_name = "DIR")]
    dir: PathBuf,
    /// The CA's common name.
    #[arg(long, default_value = "Waymark CA", value_name = "NAME")]
    common_name: String,
    /// How long the CA is valid.
    #[arg(long, default_value_t = 5 * DEFAULT_DAYS, value_parser = clap::value_parser!(i64).range(1..=36500))]
    days: i64,
}

#[derive(Debug, Args)]
pub(super) struct CertCreateArgs {
    /// The node's name: the certificate's common name and the files' stem.
    #[arg(long, value_name = "NAME", value_parser = parse_file_stem)]
    name: String,
    /// An address clients and peers dial this node at: an IP address or a DNS name.
    /// Repeat for each (e.g. --san 10.0.0.1 --san node-1.example --san localhost).
    #[arg(long = "san", value_name = "ADDRESS", required = true)]
    sans: Vec<String>,
    /// The CA certificate.
    #[arg(long, default_value = "ca.pem", value_name = "FILE")]
    ca: PathBuf,
    /// The CA's private key.
    #[arg(long, default_value = "ca-key.pem", value_name = "FILE")]
    ca_key: PathBuf,
    /// Where to write NAME.pem and NAME-key.pem.
    #[arg(long, default_value = ".", value_name = "DIR")]
    dir: PathBuf,
    /// How long the certificate is valid.
    #[arg(long, default_value_t = DEFAULT_DAYS, value_parser = clap::value_parser!(i64).range(1..=36500))]
    days: i64,
}

/// A name usable as a file stem: letters, digits, '-', '_' and '.', not starting with
/// a dot (so `--name ../x` cannot write outside --dir).
fn parse_file_stem(name: &str) -> Result<String, String> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(name.to_string())
    } else {
        Err(format!(
            "{name:?} must be letters, digits, '-', '_' or '.', not starting with '.'"
        ))
    }
}

pub(super) fn run(cmd: TlsCommand) -> anyhow::Result<()> {
    match cmd {
        TlsCommand::Ca(CaCommand::Create(args)) => {
            let ca = LocalCa::with_days(&args.common_name, args.days)?;
            let (cert, key) = ca.write_ca(&args.dir)?;
            println!("wrote {} (the CA certificate)", cert.display());
            println!("wrote {} (its private key: keep it secret)", key.display());
        }
        TlsCommand::Cert(CertCommand::Create(args)) => {
            let ca = LocalCa::load(&args.ca, &args.ca_key, args.days)?;
            let sans: Vec<&str> = args.sans.iter().map(String::as_str).collect();
            let files = ca.write_leaf(&args.dir, &args.name, &sans)?;
            println!("wrote {} (tls.cert_file)", files.cert_file.display());
            println!("wrote {} (tls.key_file)", files.key_file.display());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_file_stem;

    #[test]
    fn names_that_would_leave_the_directory_are_refused() {
        assert!(parse_file_stem("node-1").is_ok());
        assert!(parse_file_stem("n1.example").is_ok());
        for bad in ["", "../x", "a/b", ".hidden", "a b"] {
            let err = parse_file_stem(bad).unwrap_err();
            assert!(err.contains("must be"), "{bad:?}: {err}");
        }
    }
}
