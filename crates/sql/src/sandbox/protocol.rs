//! What a parent and a query worker process say to each other over the
//! worker's stdin and stdout: length-prefixed JSON frames, each starting
//! with a tag so that stray output (a test harness's banner, a panic message)
//! is recognised as such instead of being read as a length.

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ExecError, QueryResult, SandboxLimits};
use crate::value::Value;

/// The line a worker prints once it is ready; everything before it on the
/// worker's stdout is someone else's output and is skipped.
pub(crate) const READY_LINE: &[u8] = b"text2sql-sql-worker ready v1\n";

/// Starts every frame.
const FRAME_TAG: &[u8; 4] = b"T2SQ";

/// The largest frame either side accepts: a result of
/// [`SandboxLimits::max_result_bytes`] grows at most ~6x as JSON (a blob's
/// bytes are written as numbers), and no limit goes past 1 GB in practice.
const MAX_FRAME_BYTES: u64 = 8 << 30;

/// One query to run.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Request {
    /// The database file, as the OS spells it (not necessarily UTF-8).
    pub database: Vec<u8>,
    pub sql: String,
    pub limits: SandboxLimits,
}

impl Request {
    pub fn database_path(&self) -> PathBuf {
        path_from_bytes(&self.database)
    }
}

/// What came of it.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Reply {
    Rows(WireResult),
    Failed(ExecError),
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WireResult {
    columns: Vec<String>,
    rows: Vec<Vec<WireValue>>,
    truncated: bool,
    elapsed: Duration,
}

/// [`Value`] with the float carried as its bits, so that NaN, infinities and
/// every last digit survive the trip through JSON.
#[derive(Debug, Serialize, Deserialize)]
enum WireValue {
    Null,
    Integer(i64),
    Real(u64),
    Text(String),
    Blob(Vec<u8>),
}

impl From<QueryResult> for WireResult {
    fn from(result: QueryResult) -> Self {
        WireResult {
            columns: result.columns,
            rows: result
                .rows
                .into_iter()
                .map(|row| row.into_iter().map(WireValue::from).collect())
                .collect(),
            truncated: result.truncated,
            elapsed: result.elapsed,
        }
    }
}

impl From<WireResult> for QueryResult {
    fn from(wire: WireResult) -> Self {
        QueryResult {
            columns: wire.columns,
            rows: wire
                .rows
                .into_iter()
                .map(|row| row.into_iter().map(Value::from).collect())
                .collect(),
            truncated: wire.truncated,
            elapsed: wire.elapsed,
        }
    }
}

impl From<Value> for WireValue {
    fn from(value: Value) -> Self {
        match value {
            Value::Null => WireValue::Null,
            Value::Integer(i) => WireValue::Integer(i),
            Value::Real(f) => WireValue::Real(f.to_bits()),
            Value::Text(s) => WireValue::Text(s),
            Value::Blob(b) => WireValue::Blob(b),
        }
    }
}

impl From<WireValue> for Value {
    fn from(value: WireValue) -> Self {
        match value {
            WireValue::Null => Value::Null,
            WireValue::Integer(i) => Value::Integer(i),
            WireValue::Real(bits) => Value::Real(f64::from_bits(bits)),
            WireValue::Text(s) => Value::Text(s),
            WireValue::Blob(b) => Value::Blob(b),
        }
    }
}

pub(crate) fn path_to_bytes(path: &std::path::Path) -> Vec<u8> {
    path.as_os_str().as_encoded_bytes().to_vec()
}

#[cfg(unix)]
fn path_from_bytes(bytes: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    PathBuf::from(std::ffi::OsStr::from_bytes(bytes))
}

#[cfg(not(unix))]
fn path_from_bytes(bytes: &[u8]) -> PathBuf {
    PathBuf::from(String::from_utf8_lossy(bytes).into_owned())
}

/// Writes one frame: tag, length (u64 little-endian), JSON.
pub(crate) fn write_frame<T: Serialize>(out: &mut impl Write, message: &T) -> io::Result<()> {
    let body = serde_json::to_vec(message).map_err(io::Error::other)?;
    out.write_all(FRAME_TAG)?;
    out.write_all(&(body.len() as u64).to_le_bytes())?;
    out.write_all(&body)?;
    out.flush()
}

/// Reads one frame; `Ok(None)` at a clean end of stream.
pub(crate) fn read_frame<T: for<'de> Deserialize<'de>>(
    input: &mut impl Read,
) -> io::Result<Option<T>> {
    let mut tag = [0u8; 4];
    match input.read_exact(&mut tag) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    if &tag != FRAME_TAG {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "not a frame: starts with {:?}",
                String::from_utf8_lossy(&tag)
            ),
        ));
    }
    let mut length = [0u8; 8];
    input.read_exact(&mut length)?;
    let length = u64::from_le_bytes(length);
    if length > MAX_FRAME_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {length} bytes is over the {MAX_FRAME_BYTES}-byte limit"),
        ));
    }
    let mut body = vec![0u8; length as usize];
    input.read_exact(&mut body)?;
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Skips everything up to and including [`READY_LINE`]; false if the stream
/// ended first.
pub(crate) fn skip_to_ready(input: &mut impl Read) -> io::Result<bool> {
    let mut matched = 0;
    let mut byte = [0u8; 1];
    loop {
        if input.read(&mut byte)? == 0 {
            return Ok(false);
        }
        if byte[0] == READY_LINE[matched] {
            matched += 1;
            if matched == READY_LINE.len() {
                return Ok(true);
            }
        } else {
            matched = usize::from(byte[0] == READY_LINE[0]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_cross_the_pipe_unchanged() {
        let result = QueryResult {
            columns: vec!["a".into(), "b".into()],
            rows: vec![vec![
                Value::Real(f64::NAN),
                Value::Real(0.1 + 0.2),
                Value::Text("é\0x".into()),
                Value::Blob(vec![0, 255]),
                Value::Integer(i64::MIN),
                Value::Null,
            ]],
            truncated: true,
            elapsed: Duration::from_micros(1234),
        };
        let mut pipe = Vec::new();
        write_frame(&mut pipe, &Reply::Rows(result.clone().into())).unwrap();
        write_frame(&mut pipe, &Reply::Failed(ExecError::Timeout(2.5))).unwrap();
        let mut input = pipe.as_slice();
        let Some(Reply::Rows(wire)) = read_frame(&mut input).unwrap() else {
            panic!("expected rows");
        };
        let back = QueryResult::from(wire);
        assert_eq!(back.columns, result.columns);
        assert!(matches!(back.rows[0][0], Value::Real(f) if f.is_nan()));
        assert!(matches!(back.rows[0][1], Value::Real(f) if f == 0.1 + 0.2));
        assert_eq!(back.rows[0][2..], result.rows[0][2..]);
        assert!(back.truncated);
        assert_eq!(back.elapsed, result.elapsed);
        assert!(matches!(
            read_frame(&mut input).unwrap(),
            Some(Reply::Failed(ExecError::Timeout(t))) if t == 2.5
        ));
        assert!(read_frame::<Reply>(&mut input).unwrap().is_none());
    }

    #[test]
    fn stray_output_before_ready_is_skipped_and_after_it_is_an_error() {
        let mut stream = b"\nrunning 1 test\ntext2sql-sql-worker ready v1\n".to_vec();
        stream.extend_from_slice(b"thread panicked at ...");
        let mut input = stream.as_slice();
        assert!(skip_to_ready(&mut input).unwrap());
        let error = read_frame::<Reply>(&mut input).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        assert!(!skip_to_ready(&mut b"no banner".as_slice()).unwrap());
    }
}
