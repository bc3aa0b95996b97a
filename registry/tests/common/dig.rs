//! The real `dig` against a node's DNS port: the answer's rcode and data.

use std::process::Command;

/// Runs dig against `addr` (IP:PORT); returns (rcode, answer data).
pub fn dig(addr: &str, name: &str, qtype: &str) -> (String, Vec<String>) {
    dig_with(addr, name, qtype, &[])
}

/// The full dig output for `name`/`qtype` with extra options.
pub fn dig_raw(addr: &str, name: &str, qtype: &str, extra: &[&str]) -> String {
    let (host, port) = addr.rsplit_once(':').unwrap();
    let mut args = vec![
        format!("@{host}"),
        "-p".into(),
        port.into(),
        name.into(),
        qtype.into(),
    ];
    args.extend(["+time=2", "+tries=1"].map(String::from));
    args.extend(extra.iter().map(|s| s.to_string()));
    let out = Command::new("dig")
        .args(&args)
        .output()
        .expect("dig is needed (Debian package `dnsutils`; scripts/test.sh installs it)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn dig_with(addr: &str, name: &str, qtype: &str, extra: &[&str]) -> (String, Vec<String>) {
    let (host, port) = addr.rsplit_once(':').unwrap();
    let out = Command::new("dig")
        .args(extra)
        .args([
            &format!("@{host}"),
            "-p",
            port,
            name,
            qtype,
            "+time=1",
            "+tries=1",
            "+noall",
            "+comments",
            "+answer",
        ])
        .output()
        .expect("dig is needed (Debian package `dnsutils`; scripts/test.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    let status = text
        .split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or("NO-ANSWER")
        .to_string();
    let answers = text
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().last().map(str::to_string))
        .collect();
    (status, answers)
}
