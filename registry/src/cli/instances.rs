//! `waymark instances SERVICE`: the service's instances through StreamInstances,
//! printed part by part as they arrive (each part about 1 MiB, all at one index), so
//! a 100k-instance service is never held whole in the CLI's memory.

use anyhow::Context;
use serde_json::Value;
use waymark_client::catalog;
use waymark_proto::pb;

use super::client::{read, read_options};
use super::output::{self, print_line};
use super::{InstancesArgs, UsageError};

pub(super) async fn run(a: InstancesArgs) -> anyhow::Result<()> {
    let request = pb::ListInstancesRequest {
        service: a.service.clone(),
        read: Some(read_options(&a.read).map_err(UsageError)?),
        passing_only: a.passing_only,
    };
    // Opening the stream fails over between nodes; once parts are printed, a cut
    // stream is an error (another node's answer could be at another index).
    let mut parts = read(&a.client, |ch| {
        let request = request.clone();
        async move { catalog(ch).stream_instances(request).await }
    })
    .await?;
    let mut printer = Printer::new(a.client.json, &a.service);
    loop {
        let part = parts
            .message()
            .await
            .with_context(|| format!("the answer was cut after {} instances", printer.count))?
            .with_context(|| {
                format!(
                    "the answer ended after {} instances without its last part",
                    printer.count
                )
            })?;
        let last = !part.more;
        printer.part(&part.instances)?;
        if last {
            return printer.finish(part.meta.as_ref());
        }
    }
}

/// Prints parts as they come: a table (header once) or one JSON document written in
/// pieces, the same document `--json` prints for any other command.
struct Printer<'a> {
    json: bool,
    service: &'a str,
    count: usize,
}

impl<'a> Printer<'a> {
    fn new(json: bool, service: &'a str) -> Self {
        Self {
            json,
            service,
            count: 0,
        }
    }

    fn part(&mut self, instances: &[pb::Instance]) -> anyhow::Result<()> {
        if self.json {
            for i in instances {
                let sep = match self.count {
                    0 => "{\n  \"instances\": [\n",
                    _ => ",\n",
                };
                let item = indent(&format!("{:#}", output::instance_json(i)), "    ");
                write(&format!("{sep}{item}"))?;
                self.count += 1;
            }
        } else if !instances.is_empty() {
            let table = output::instances_table(instances);
            // Each part is aligned on its own; the header comes once.
            let body = match self.count {
                0 => table.as_str(),
                _ => table.split_once('\n').map_or("", |(_, rows)| rows),
            };
            write(body)?;
            self.count += instances.len();
        }
        Ok(())
    }

    fn finish(self, meta: Option<&pb::ResponseMeta>) -> anyhow::Result<()> {
        if self.json {
            let head = match self.count {
                0 => "{\n  \"instances\": [],\n",
                _ => "\n  ],\n",
            };
            let meta: Value = output::meta_json(meta);
            let meta = indent(&format!("{meta:#}"), "  ");
            print_line(&format!("{head}  \"meta\": {}\n}}", meta.trim_start()))?;
            return Ok(());
        }
        if self.count == 0 {
            write(&format!("no instances of service {:?}\n", self.service))?;
        }
        print_line(&output::footer(meta))?;
        Ok(())
    }
}

fn write(text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

fn indent(text: &str, by: &str) -> String {
    text.lines()
        .map(|l| format!("{by}{l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
