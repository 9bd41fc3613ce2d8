//! Command-line arguments of the `trace-sink` example, parsed here so they are unit-tested.

use super::DEFAULT_ROUTING_HEADER;
use std::path::PathBuf;

/// The help text.
pub const USAGE: &str = "\
usage: trace-sink --socket PATH [--json FILE] [--quiet-ms MS] [--width N] [--routing-header NAME]

Receives OTLP/HTTP traces (POST /v1/traces, application/x-protobuf, optionally gzip) on a
Unix socket and prints each trace as a waterfall until Ctrl-C.

  --socket PATH          Unix socket to listen on (required; a stale socket file is replaced)
  --json FILE            also write one JSON object per span to FILE (truncated at start)
  --quiet-ms MS          print a trace once no span of it arrived for MS ms (default 300)
  --width N              bar width in characters, at least 1 (default 60)
  --routing-header NAME  header holding the routing value (default cf-trace-config)
  -h, --help             show this help";

/// Parsed arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Args {
    /// `--socket`: the Unix socket to listen on.
    pub socket: PathBuf,
    /// `--json`: where to write JSON lines.
    pub json: Option<PathBuf>,
    /// `--quiet-ms`: the quiet period in milliseconds.
    pub quiet_ms: u64,
    /// `--width`: the bar width.
    pub width: usize,
    /// `--routing-header`: the routing header name.
    pub routing_header: String,
}

/// Parses the arguments after the program name: `Ok(None)` when help was asked for, `Err`
/// with a message for bad arguments.
pub fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut socket = None;
    let mut json = None;
    let mut quiet_ms = 300;
    let mut width = 60;
    let mut routing_header = DEFAULT_ROUTING_HEADER.to_owned();
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(None);
        }
        // Both `--flag value` and `--flag=value`.
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_owned(), Some(value.to_owned()))
            }
            _ => (arg, None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--socket" => socket = Some(PathBuf::from(value()?)),
            "--json" => json = Some(PathBuf::from(value()?)),
            "--quiet-ms" => {
                let raw = value()?;
                quiet_ms = raw.parse().map_err(|_| {
                    format!("--quiet-ms: expected a number of milliseconds, got {raw:?}")
                })?;
            }
            "--width" => {
                let raw = value()?;
                width = raw
                    .parse()
                    .ok()
                    .filter(|&w: &usize| w >= 1)
                    .ok_or_else(|| format!("--width: expected a whole number >= 1, got {raw:?}"))?;
            }
            "--routing-header" => routing_header = value()?,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let socket = socket.ok_or("--socket is required")?;
    if socket.as_os_str().is_empty() {
        return Err("--socket: the path is empty".to_owned());
    }
    Ok(Some(Args {
        socket,
        json,
        quiet_ms,
        width,
        routing_header,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Option<Args>, String> {
        parse_args(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn parses_every_flag_in_both_forms() {
        let args = parse(&[
            "--socket",
            "/tmp/s.sock",
            "--json=out.jsonl",
            "--quiet-ms",
            "50",
            "--width=30",
            "--routing-header",
            "x-route",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(args.socket, PathBuf::from("/tmp/s.sock"));
        assert_eq!(args.json, Some(PathBuf::from("out.jsonl")));
        assert_eq!(args.quiet_ms, 50);
        assert_eq!(args.width, 30);
        assert_eq!(args.routing_header, "x-route");
        let defaults = parse(&["--socket=/s"]).unwrap().unwrap();
        assert_eq!((defaults.quiet_ms, defaults.width), (300, 60));
        assert_eq!(defaults.routing_header, "cf-trace-config");
    }

    #[test]
    fn rejects_bad_arguments_with_a_message() {
        assert!(parse(&[]).unwrap_err().contains("--socket is required"));
        assert!(parse(&["--socket"]).unwrap_err().contains("needs a value"));
        assert!(
            parse(&["--socket", "s", "--width", "0"])
                .unwrap_err()
                .contains(">= 1")
        );
        assert!(
            parse(&["--socket", "s", "--quiet-ms", "soon"])
                .unwrap_err()
                .contains("milliseconds")
        );
        assert!(
            parse(&["--socket", "s", "--verbose"])
                .unwrap_err()
                .contains("unknown argument")
        );
        assert!(parse(&["--help"]).unwrap().is_none());
    }
}
