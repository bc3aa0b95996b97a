//! Readers for recorded histories: Jepsen's etcd register log (`jepsen-log`) and
//! Jepsen events as EDN maps, one per line (`kv-edn`).
//!
//! Both are event logs in real-time order, so an event's line number serves as its
//! time. Completions follow Jepsen's meaning of the event types: `:ok` returned the
//! given value, `:fail` did not take effect, `:info` may or may not have taken effect
//! (the operation stays open forever, as does one left without a completion). The
//! etcd log bends this in two places: its `:fail` cas ran and found another value,
//! and its `:fail` read timed out, which for a read comes to the same.
//!
//! Bad input is an error naming the file and line, never a panic; only blank lines
//! and nemesis events are passed over, since a history silently missing operations
//! could get the wrong verdict.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use super::models::{KvInput, KvOp, KvOutput, RegisterInput, RegisterOutput};
use super::{Operation, Time};

/// Why a history could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}: {message}", path.display())]
    Invalid {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

pub type RegisterHistory = Vec<Operation<RegisterInput, RegisterOutput>>;
pub type KvHistory = Vec<Operation<KvInput, KvOutput>>;

/// Reads an etcd register history in Jepsen's log format:
/// `INFO  jepsen.util - <process>\t:<type>\t:<f>\t<value>`.
pub fn read_jepsen_log(path: &Path) -> Result<RegisterHistory, ParseError> {
    parse_jepsen_log(path, &read(path)?)
}

/// Parses the text of a [`read_jepsen_log`] file; `path` only names it in errors.
pub fn parse_jepsen_log(path: &Path, text: &str) -> Result<RegisterHistory, ParseError> {
    parse_lines(path, text, jepsen_log_line)
}

/// Reads a key-value history of EDN maps, one event a line:
/// `{:process 9, :type :invoke, :f :append, :key "0", :value "x 9 0 y"}`.
pub fn read_kv_edn(path: &Path) -> Result<KvHistory, ParseError> {
    parse_kv_edn(path, &read(path)?)
}

/// Parses the text of a [`read_kv_edn`] file; `path` only names it in errors.
pub fn parse_kv_edn(path: &Path, text: &str) -> Result<KvHistory, ParseError> {
    parse_lines(path, text, kv_edn_line)
}

fn read(path: &Path) -> Result<String, ParseError> {
    fs::read_to_string(path).map_err(|source| ParseError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Parses one event line into the builder; the error is the message for that line.
type LineParser<I, O> = fn(&mut Builder<I, O>, Time, &str) -> Result<(), String>;

/// Feeds every non-blank line to `parse_line` with its line number as the time.
fn parse_lines<I, O>(
    path: &Path,
    text: &str,
    parse_line: LineParser<I, O>,
) -> Result<Vec<Operation<I, O>>, ParseError> {
    let mut builder = Builder::default();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let number = index + 1;
        parse_line(&mut builder, number as Time, line).map_err(|message| ParseError::Invalid {
            path: path.to_owned(),
            line: number,
            message,
        })?;
    }
    Ok(builder.finish())
}

/// How a completion event resolves the pending operation of its process.
enum Completion<O> {
    /// `:ok`, or a `:fail` that still tells the outcome (a cas whose compare failed).
    Returned(O),
    /// It returned, but without telling what it saw (a timed-out read).
    ReturnedUnknown,
    /// `:fail`: it did not take effect, so it is left out of the history.
    NotApplied,
    /// `:info`: it may take effect at any later point, or never.
    Indeterminate,
}

/// Pairs invocations with completions per process.
struct Builder<I, O> {
    /// Operations in invocation order; `None` once known not to have happened.
    ops: Vec<Option<Operation<I, O>>>,
    /// The slot in `ops` of each process's open invocation.
    pending: HashMap<u64, usize>,
}

impl<I, O> Default for Builder<I, O> {
    fn default() -> Self {
        Self {
            ops: Vec::new(),
            pending: HashMap::new(),
        }
    }
}

impl<I, O> Builder<I, O> {
    fn invoke(&mut self, process: u64, input: I, time: Time) -> Result<(), String> {
        if let Some(&slot) = self.pending.get(&process) {
            let since = self.ops[slot].as_ref().map_or(0, |op| op.call_time);
            return Err(format!(
                "process {process} invokes again while its operation from line {since} is still open"
            ));
        }
        self.pending.insert(process, self.ops.len());
        // Open until a completion says otherwise, which is also what an invocation
        // that never completes must stay.
        self.ops
            .push(Some(Operation::indeterminate(process, input, time)));
        Ok(())
    }

    /// Completes the open operation of `process`; `resolve` validates the
    /// completion against the invocation and says what it means.
    fn complete(
        &mut self,
        process: u64,
        time: Time,
        resolve: impl FnOnce(&I) -> Result<Completion<O>, String>,
    ) -> Result<(), String> {
        let slot = self
            .pending
            .remove(&process)
            .ok_or_else(|| format!("process {process} completes an operation it never invoked"))?;
        let Some(op) = self.ops[slot].as_mut() else {
            return Err(format!("process {process} has no open operation"));
        };
        match resolve(&op.input)? {
            Completion::Returned(output) => {
                op.output = Some(output);
                op.return_time = time;
            }
            Completion::ReturnedUnknown => op.return_time = time,
            Completion::NotApplied => self.ops[slot] = None,
            Completion::Indeterminate => {}
        }
        Ok(())
    }

    fn finish(self) -> Vec<Operation<I, O>> {
        self.ops.into_iter().flatten().collect()
    }
}

// ---- jepsen-log ----

fn jepsen_log_line(
    builder: &mut Builder<RegisterInput, RegisterOutput>,
    time: Time,
    line: &str,
) -> Result<(), String> {
    let Some((_, event)) = line.split_once("jepsen.util - ") else {
        return Err(
            "expected a Jepsen event `INFO  jepsen.util - <process> <type> <f> <value>`".into(),
        );
    };
    let (process, rest) = next_word(event)?;
    let (kind, rest) = next_word(rest)?;
    let (f, value) = next_word(rest)?;
    let value = value.trim();
    // The nemesis logs its faults as a process named by a keyword; they are not
    // operations on the register.
    if process.starts_with(':') {
        return Ok(());
    }
    let process = process
        .parse::<u64>()
        .map_err(|_| format!("process `{process}` is not a number"))?;
    match kind {
        ":invoke" => {
            let input = match f {
                ":read" => RegisterInput::Read,
                ":write" => RegisterInput::Write(int(value)?),
                ":cas" => {
                    let (from, to) = int_pair(value)?;
                    RegisterInput::Cas { from, to }
                }
                other => return Err(format!("unknown register operation `{other}`")),
            };
            builder.invoke(process, input, time)
        }
        ":ok" | ":fail" | ":info" => builder.complete(process, time, |input| {
            register_completion(input, kind, f, value)
        }),
        other => Err(format!("unknown event type `{other}`")),
    }
}

fn register_completion(
    input: &RegisterInput,
    kind: &str,
    f: &str,
    value: &str,
) -> Result<Completion<RegisterOutput>, String> {
    let invoked = match input {
        RegisterInput::Read => ":read",
        RegisterInput::Write(_) => ":write",
        RegisterInput::Cas { .. } => ":cas",
    };
    if f != invoked {
        return Err(format!("`{f}` completes an invocation of `{invoked}`"));
    }
    let completion = match (kind, input) {
        (":info", _) => Completion::Indeterminate,
        (":ok", RegisterInput::Read) => {
            let read = if value == "nil" {
                None
            } else {
                Some(int(value)?)
            };
            Completion::Returned(RegisterOutput::Read(read))
        }
        (":ok", RegisterInput::Write(written)) => {
            same(int(value)?, *written)?;
            Completion::Returned(RegisterOutput::Write)
        }
        (":ok", RegisterInput::Cas { from, to }) => {
            same(int_pair(value)?, (*from, *to))?;
            Completion::Returned(RegisterOutput::Cas(true))
        }
        // A read changes nothing, so one that failed (timed out) may as well have
        // happened and seen anything.
        (_, RegisterInput::Read) => Completion::ReturnedUnknown,
        // etcd's cas reports a compare that did not match as a `:fail` with the
        // arguments: it ran, and its outcome is known.
        (_, RegisterInput::Cas { from, to }) if value.starts_with('[') => {
            same(int_pair(value)?, (*from, *to))?;
            Completion::Returned(RegisterOutput::Cas(false))
        }
        _ => Completion::NotApplied,
    };
    Ok(completion)
}

/// Splits off the first whitespace-separated word.
fn next_word(text: &str) -> Result<(&str, &str), String> {
    let text = text.trim_start();
    if text.is_empty() {
        return Err("the event ends early: expected <process> <type> <f> <value>".into());
    }
    let end = text.find(char::is_whitespace).unwrap_or(text.len());
    Ok(text.split_at(end))
}

fn int(text: &str) -> Result<i64, String> {
    text.parse()
        .map_err(|_| format!("expected an integer, found `{text}`"))
}

/// Parses `[<from> <to>]`.
fn int_pair(text: &str) -> Result<(i64, i64), String> {
    let error = || format!("expected `[<from> <to>]`, found `{text}`");
    let inner = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .ok_or_else(error)?;
    let mut numbers = inner.split_whitespace().map(int);
    match (numbers.next(), numbers.next(), numbers.next()) {
        (Some(from), Some(to), None) => Ok((from?, to?)),
        _ => Err(error()),
    }
}

/// Checks that a completion repeats its invocation's arguments.
fn same<T: PartialEq + std::fmt::Debug>(completed: T, invoked: T) -> Result<(), String> {
    if completed == invoked {
        Ok(())
    } else {
        Err(format!(
            "the completion's value {completed:?} differs from the invocation's {invoked:?}"
        ))
    }
}

// ---- kv-edn ----

fn kv_edn_line(
    builder: &mut Builder<KvInput, KvOutput>,
    time: Time,
    line: &str,
) -> Result<(), String> {
    let event = edn_map(line)?;
    let field = |name: &str| {
        event
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value)
            .ok_or_else(|| format!("the event has no `:{name}`"))
    };
    let process = match field("process")? {
        Edn::Int(process) => {
            u64::try_from(*process).map_err(|_| format!("process {process} is negative"))?
        }
        // The nemesis is a process named by a keyword; its events are faults, not
        // operations on the store.
        Edn::Keyword(_) => return Ok(()),
        other => return Err(format!("`:process` should be a number, found {other}")),
    };
    let kind = keyword(field("type")?, "type")?;
    let f = keyword(field("f")?, "f")?;
    let key = match field("key")? {
        Edn::Str(key) => key.clone(),
        Edn::Int(key) => key.to_string(),
        other => return Err(format!("`:key` should be a string, found {other}")),
    };
    let value = field("value")?;
    match kind {
        "invoke" => {
            let op = match f {
                "get" => KvOp::Get,
                "put" => KvOp::Put(string(value)?),
                "append" => KvOp::Append(string(value)?),
                other => return Err(format!("unknown kv operation `:{other}`")),
            };
            builder.invoke(process, KvInput { key, op }, time)
        }
        "ok" | "fail" | "info" => builder.complete(process, time, |input| {
            kv_completion(input, kind, f, &key, value)
        }),
        other => Err(format!("unknown event type `:{other}`")),
    }
}

fn kv_completion(
    input: &KvInput,
    kind: &str,
    f: &str,
    key: &str,
    value: &Edn,
) -> Result<Completion<KvOutput>, String> {
    let invoked = match input.op {
        KvOp::Get => "get",
        KvOp::Put(_) => "put",
        KvOp::Append(_) => "append",
    };
    if f != invoked {
        return Err(format!("`:{f}` completes an invocation of `:{invoked}`"));
    }
    if key != input.key {
        return Err(format!(
            "key {key:?} completes an invocation on key {:?}",
            input.key
        ));
    }
    let completion = match (kind, &input.op) {
        ("info", _) => Completion::Indeterminate,
        ("fail", _) => Completion::NotApplied,
        // Keys start empty; a store that reports a missing key as nil means the same.
        (_, KvOp::Get) if *value == Edn::Nil => {
            Completion::Returned(KvOutput::Value(String::new()))
        }
        (_, KvOp::Get) => Completion::Returned(KvOutput::Value(string(value)?)),
        (_, KvOp::Put(written) | KvOp::Append(written)) => {
            same(string(value)?, written.clone())?;
            Completion::Returned(KvOutput::Done)
        }
    };
    Ok(completion)
}

/// The EDN values an event uses.
#[derive(Debug, PartialEq)]
enum Edn {
    Nil,
    Bool(bool),
    Int(i64),
    Str(String),
    /// Without the leading colon.
    Keyword(String),
}

impl std::fmt::Display for Edn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Edn::Nil => f.write_str("nil"),
            Edn::Bool(b) => write!(f, "{b}"),
            Edn::Int(i) => write!(f, "{i}"),
            Edn::Str(s) => write!(f, "{s:?}"),
            Edn::Keyword(k) => write!(f, ":{k}"),
        }
    }
}

fn keyword<'a>(value: &'a Edn, name: &str) -> Result<&'a str, String> {
    match value {
        Edn::Keyword(k) => Ok(k),
        other => Err(format!("`:{name}` should be a keyword, found {other}")),
    }
}

fn string(value: &Edn) -> Result<String, String> {
    match value {
        Edn::Str(s) => Ok(s.clone()),
        other => Err(format!("`:value` should be a string, found {other}")),
    }
}

/// Parses a one-line EDN map with keyword keys and scalar values.
fn edn_map(line: &str) -> Result<Vec<(String, Edn)>, String> {
    let mut rest = skip_blank(line)
        .strip_prefix('{')
        .ok_or("expected an EDN map `{:key value, ...}`")?;
    let mut entries = Vec::new();
    loop {
        rest = skip_blank(rest);
        if let Some(after) = rest.strip_prefix('}') {
            if !skip_blank(after).is_empty() {
                return Err(format!("unexpected `{}` after the map", skip_blank(after)));
            }
            return Ok(entries);
        }
        let (key, after) = edn_value(rest)?;
        let Edn::Keyword(key) = key else {
            return Err(format!("map keys should be keywords, found {key}"));
        };
        let (value, after) = edn_value(skip_blank(after))?;
        entries.push((key, value));
        rest = after;
    }
}

/// Commas are whitespace in EDN.
fn skip_blank(text: &str) -> &str {
    text.trim_start_matches(|c: char| c.is_whitespace() || c == ',')
}

/// Parses one scalar at the start of `text`, returning it and the rest.
fn edn_value(text: &str) -> Result<(Edn, &str), String> {
    if let Some(body) = text.strip_prefix('"') {
        return edn_string(body);
    }
    let end = text
        .find(|c: char| c.is_whitespace() || matches!(c, ',' | '}' | '{' | '[' | ']' | '"'))
        .unwrap_or(text.len());
    let (word, rest) = text.split_at(end);
    let value = match word {
        "" if text.is_empty() => return Err("the map is not closed with `}`".into()),
        "nil" => Edn::Nil,
        "true" => Edn::Bool(true),
        "false" => Edn::Bool(false),
        _ => {
            if let Some(name) = word.strip_prefix(':').filter(|n| !n.is_empty()) {
                Edn::Keyword(name.to_owned())
            } else if let Ok(i) = word.parse() {
                Edn::Int(i)
            } else {
                let shown: String = if word.is_empty() {
                    text.chars().take(1).collect()
                } else {
                    word.to_owned()
                };
                return Err(format!("unsupported EDN value `{shown}`"));
            }
        }
    };
    Ok((value, rest))
}

/// Parses the body of a string literal after its opening quote.
fn edn_string(body: &str) -> Result<(Edn, &str), String> {
    let mut value = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((Edn::Str(value), &body[i + 1..])),
            '\\' => {
                let escaped = match chars.next().map(|(_, e)| e) {
                    Some('"') => '"',
                    Some('\\') => '\\',
                    Some('n') => '\n',
                    Some('t') => '\t',
                    Some('r') => '\r',
                    Some(other) => return Err(format!("unsupported string escape `\\{other}`")),
                    None => break,
                };
                value.push(escaped);
            }
            _ => value.push(c),
        }
    }
    Err("a string is not closed with `\"`".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::INFINITY;

    fn log(lines: &[&str]) -> String {
        lines
            .iter()
            .map(|l| format!("INFO  jepsen.util - {l}\n"))
            .collect()
    }

    fn jepsen(text: &str) -> Result<RegisterHistory, String> {
        parse_jepsen_log(Path::new("h.log"), text).map_err(|e| e.to_string())
    }

    fn kv(text: &str) -> Result<KvHistory, String> {
        parse_kv_edn(Path::new("h.edn"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn jepsen_log_pairs_invocations_with_completions() {
        let text = log(&[
            "0\t:invoke\t:read\tnil",
            "1\t:invoke\t:cas\t[3 0]",
            "0\t:ok\t:read\t4",
            "1\t:fail\t:cas\t[3 0]",
            "2\t:invoke\t:write\t5",
            "2\t:ok\t:write\t5",
        ]);
        let history = jepsen(&text).expect("a valid history");
        assert_eq!(
            history,
            vec![
                Operation::completed(0, RegisterInput::Read, 1, RegisterOutput::Read(Some(4)), 3),
                Operation::completed(
                    1,
                    RegisterInput::Cas { from: 3, to: 0 },
                    2,
                    RegisterOutput::Cas(false),
                    4
                ),
                Operation::completed(2, RegisterInput::Write(5), 5, RegisterOutput::Write, 6),
            ]
        );
    }

    #[test]
    fn jepsen_log_timeouts_and_open_invocations() {
        let text = log(&[
            "0\t:invoke\t:write\t1",
            "0\t:info\t:write\t:timed-out",
            "1\t:invoke\t:read\tnil",
            "1\t:fail\t:read\t:timed-out",
            "2\t:invoke\t:cas\t[1 2]",
            "3\t:invoke\t:write\t9",
            "3\t:fail\t:write\t:timed-out",
            "4\t:invoke\t:read\tnil",
            "4\t:ok\t:read\tnil",
        ]);
        let history = jepsen(&text).expect("a valid history");
        assert_eq!(
            history,
            vec![
                Operation::indeterminate(0, RegisterInput::Write(1), 1),
                Operation {
                    client_id: 1,
                    input: RegisterInput::Read,
                    call_time: 3,
                    output: None,
                    return_time: 4,
                },
                Operation::indeterminate(2, RegisterInput::Cas { from: 1, to: 2 }, 5),
                // The failed write did not happen and is gone.
                Operation::completed(4, RegisterInput::Read, 8, RegisterOutput::Read(None), 9),
            ]
        );
        assert_eq!(history[0].return_time, INFINITY);
    }

    #[test]
    fn jepsen_log_skips_nemesis_and_blank_lines() {
        let text = format!(
            "\n{}",
            log(&[":nemesis\t:info\t:start\tnil", "0\t:invoke\t:read\tnil"])
        );
        assert_eq!(jepsen(&text).expect("a valid history").len(), 1);
    }

    #[test]
    fn jepsen_log_errors_name_file_and_line() {
        let cases = [
            (log(&["0\t:invoke\t:write\tx"]), "h.log:1: expected an integer, found `x`"),
            (
                "garbage\n".to_owned(),
                "h.log:1: expected a Jepsen event `INFO  jepsen.util - <process> <type> <f> <value>`",
            ),
            (log(&["0\t:ok\t:read\t1"]), "h.log:1: process 0 completes an operation it never invoked"),
            (
                log(&["0\t:invoke\t:read\tnil", "0\t:invoke\t:read\tnil"]),
                "h.log:2: process 0 invokes again while its operation from line 1 is still open",
            ),
            (
                log(&["0\t:invoke\t:read\tnil", "0\t:ok\t:write\t1"]),
                "h.log:2: `:write` completes an invocation of `:read`",
            ),
            (
                log(&["0\t:invoke\t:write\t1", "0\t:ok\t:write\t2"]),
                "h.log:2: the completion's value 2 differs from the invocation's 1",
            ),
            (log(&["0\t:invoke\t:cas\t[1]"]), "h.log:1: expected `[<from> <to>]`, found `[1]`"),
            (log(&["0\t:invoke"]), "h.log:1: the event ends early: expected <process> <type> <f> <value>"),
            (log(&["x\t:invoke\t:read\tnil"]), "h.log:1: process `x` is not a number"),
            (log(&["0\t:begin\t:read\tnil"]), "h.log:1: unknown event type `:begin`"),
        ];
        for (text, expected) in cases {
            assert_eq!(jepsen(&text).unwrap_err(), expected, "for {text:?}");
        }
    }

    #[test]
    fn kv_edn_pairs_invocations_with_completions() {
        let text = r#"
{:process 9, :type :invoke, :f :append, :key "0", :value "x 9 0 y"}
{:process 1, :type :invoke, :f :get, :key "9", :value nil}
{:process 9, :type :ok, :f :append, :key "0", :value "x 9 0 y"}
{:process 1, :type :ok, :f :get, :key "9", :value "a \"q\" b"}
{:process 2, :type :invoke, :f :put, :key "1", :value "v"}
{:process 3, :type :invoke, :f :put, :key "1", :value "w"}
{:process 3, :type :fail, :f :put, :key "1", :value "w"}
{:process 4, :type :invoke, :f :get, :key "1", :value nil}
{:process 4, :type :ok, :f :get, :key "1", :value nil}
"#;
        let history = kv(text).expect("a valid history");
        assert_eq!(
            history,
            vec![
                Operation::completed(9, KvInput::append("0", "x 9 0 y"), 2, KvOutput::Done, 4),
                Operation::completed(
                    1,
                    KvInput::get("9"),
                    3,
                    KvOutput::Value("a \"q\" b".into()),
                    5
                ),
                Operation::indeterminate(2, KvInput::put("1", "v"), 6),
                Operation::completed(4, KvInput::get("1"), 9, KvOutput::Value(String::new()), 10),
            ]
        );
    }

    #[test]
    fn kv_edn_errors_name_file_and_line() {
        let invoke = r#"{:process 1, :type :invoke, :f :put, :key "k", :value "v"}"#;
        let cases = [
            (
                "[1 2]".to_owned(),
                "h.edn:1: expected an EDN map `{:key value, ...}`",
            ),
            (
                r#"{:process 1, :type :invoke, :f :put, :key "k""#.to_owned(),
                "h.edn:1: the map is not closed with `}`",
            ),
            (
                r#"{:process 1, :type :invoke, :f :put, :key "k, :value nil}"#.to_owned(),
                "h.edn:1: a string is not closed with `\"`",
            ),
            (
                r#"{:process 1, :type :invoke, :f :put, :key "k"}"#.to_owned(),
                "h.edn:1: the event has no `:value`",
            ),
            (
                r#"{:process 1, :type :invoke, :f :put, :key "k", :value 3}"#.to_owned(),
                "h.edn:1: `:value` should be a string, found 3",
            ),
            (
                format!(
                    "{invoke}\n{}",
                    r#"{:process 1, :type :ok, :f :put, :key "j", :value "v"}"#
                ),
                "h.edn:2: key \"j\" completes an invocation on key \"k\"",
            ),
            (
                format!(
                    "{invoke}\n{}",
                    r#"{:process 1, :type :ok, :f :put, :key "k", :value "x"}"#
                ),
                "h.edn:2: the completion's value \"x\" differs from the invocation's \"v\"",
            ),
            (
                r#"{:process 1, :type :invoke, :f :cas, :key "k", :value "v"}"#.to_owned(),
                "h.edn:1: unknown kv operation `:cas`",
            ),
            (
                r#"{:process 1, :type :invoke, :f :get, :key "k", :value [1]}"#.to_owned(),
                "h.edn:1: unsupported EDN value `[`",
            ),
            (
                format!("{invoke} x"),
                "h.edn:1: unexpected `x` after the map",
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(kv(&text).unwrap_err(), expected, "for {text:?}");
        }
    }

    #[test]
    fn unreadable_file_is_an_error_naming_it() {
        let error = read_kv_edn(Path::new("/nonexistent/waymark-history.edn")).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("cannot read /nonexistent/waymark-history.edn: "),
            "{error}"
        );
    }
}
