//! The streaming driver behind `lake-ingest flatten`: NDJSON files or stdin
//! in, flat records out, dead letters aside, every line accounted for.
//!
//! Owns: chunked reading (memory bounded by the longest line, not the
//! input), line splitting with CRLF and BOM handling, blank lines, the CSV
//! header, output batching and the summary. Must not: parse JSON itself.

use std::io::{self, Read, Write};

use super::csv::CsvLayout;
use super::{dead_letter, FlattenConfig, Flattener};

/// Output encoding of the stream.
pub enum Format {
    Ndjson,
    /// CSV with a fixed layout (from a schema), or with the keys of the first
    /// record that flattens.
    Csv(Option<CsvLayout>),
}

/// What happened to every input line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub lines: u64,
    pub written: u64,
    pub dead_lettered: u64,
    pub blank: u64,
    pub bytes_in: u64,
}

impl Summary {
    /// Every line is written, dead-lettered or blank.
    pub fn balanced(&self) -> bool {
        self.lines == self.written + self.dead_lettered + self.blank
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} lines: {} written, {} dead-lettered, {} blank ({} bytes read)",
            self.lines, self.written, self.dead_lettered, self.blank, self.bytes_in
        )
    }
}

/// Buffered output is handed to the writer in blocks of about this size.
const FLUSH_AT: usize = 1 << 20;
/// Read size; lines longer than this grow the buffer as needed.
const READ_CHUNK: usize = 1 << 20;

/// Call `f` with every line of `input` (1-based number, without its `\n`;
/// a UTF-8 BOM at the start is dropped; a last line without a newline is a
/// line). Memory is bounded by the longest line. Returns the bytes read.
pub fn for_each_line(
    input: &mut dyn Read,
    mut f: impl FnMut(u64, &[u8]) -> io::Result<()>,
) -> io::Result<u64> {
    let mut buf: Vec<u8> = vec![0; READ_CHUNK];
    let (mut start, mut end) = (0usize, 0usize);
    let (mut line_no, mut bytes) = (0u64, 0u64);
    let mut first = true;
    loop {
        while let Some(nl) = memchr::memchr(b'\n', &buf[start..end]) {
            let line_end = start + nl;
            line_no += 1;
            let mut line = &buf[start..line_end];
            if std::mem::take(&mut first) {
                line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
            }
            f(line_no, line)?;
            start = line_end + 1;
        }
        // Keep the partial line; make room (grow only for a line longer than the buffer).
        buf.copy_within(start..end, 0);
        end -= start;
        start = 0;
        if end == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        let n = loop {
            match input.read(&mut buf[end..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        bytes += n as u64;
        if n == 0 {
            if end > 0 {
                let mut line = &buf[..end];
                if first {
                    line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
                }
                f(line_no + 1, line)?;
            }
            return Ok(bytes);
        }
        end += n;
    }
}

/// Flattens a sequence of named inputs into `out`; rejected records go to
/// `dead_letters`.
pub struct Stream<'w> {
    flattener: Flattener,
    format: Format,
    out: &'w mut dyn Write,
    dead_letters: &'w mut dyn Write,
    out_buf: Vec<u8>,
    dl_buf: Vec<u8>,
    summary: Summary,
}

impl<'w> Stream<'w> {
    pub fn new(
        config: FlattenConfig,
        format: Format,
        out: &'w mut dyn Write,
        dead_letters: &'w mut dyn Write,
    ) -> Self {
        let mut out_buf = Vec::with_capacity(FLUSH_AT + (64 << 10));
        if let Format::Csv(Some(layout)) = &format {
            out_buf.extend_from_slice(&layout.header());
        }
        Stream {
            flattener: Flattener::new(config),
            format,
            out,
            dead_letters,
            out_buf,
            dl_buf: Vec::new(),
            summary: Summary::default(),
        }
    }

    /// Process one input to its end. `source` names it in dead letters.
    pub fn process(&mut self, source: &str, input: &mut dyn Read) -> io::Result<()> {
        let bytes = for_each_line(input, |line_no, line| {
            self.line(source, line_no, line);
            if self.out_buf.len() >= FLUSH_AT {
                self.flush()?;
            }
            Ok(())
        })?;
        self.summary.bytes_in += bytes;
        self.flush()
    }

    fn line(&mut self, source: &str, line_no: u64, line: &[u8]) {
        self.summary.lines += 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.first() != Some(&b'{') && line.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r')) {
            self.summary.blank += 1;
            return;
        }
        let result = match &mut self.format {
            Format::Ndjson => self.flattener.flatten_ndjson(line, &mut self.out_buf),
            Format::Csv(Some(layout)) => {
                self.flattener.flatten_csv(line, layout, &mut self.out_buf)
            }
            Format::Csv(None) => match self.flattener.keys(line).and_then(|keys| {
                if keys.is_empty() {
                    return Err(super::ErrorKind::NoColumns);
                }
                CsvLayout::new(keys).map_err(|key| super::ErrorKind::Collision { key })
            }) {
                Ok(layout) => {
                    self.out_buf.extend_from_slice(&layout.header());
                    let r = self.flattener.flatten_csv(line, &layout, &mut self.out_buf);
                    self.format = Format::Csv(Some(layout));
                    r
                }
                Err(e) => Err(e),
            },
        };
        match result {
            Ok(()) => self.summary.written += 1,
            Err(e) => {
                self.summary.dead_lettered += 1;
                dead_letter::write(&mut self.dl_buf, source, line_no, &e.to_string(), line);
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.out_buf.is_empty() {
            self.out.write_all(&self.out_buf)?;
            self.out_buf.clear();
        }
        if !self.dl_buf.is_empty() {
            self.dead_letters.write_all(&self.dl_buf)?;
            self.dl_buf.clear();
        }
        Ok(())
    }

    /// Flush everything and return the summary.
    pub fn finish(mut self) -> io::Result<Summary> {
        self.flush()?;
        self.out.flush()?;
        self.dead_letters.flush()?;
        Ok(self.summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &[u8], format: Format) -> (String, String, Summary) {
        let (mut out, mut dl) = (Vec::new(), Vec::new());
        let mut s = Stream::new(FlattenConfig::default(), format, &mut out, &mut dl);
        s.process("in", &mut &input[..]).unwrap();
        let summary = s.finish().unwrap();
        (
            String::from_utf8(out).unwrap(),
            String::from_utf8(dl).unwrap(),
            summary,
        )
    }

    #[test]
    fn bom_crlf_blank_lines_and_a_missing_final_newline() {
        let (out, dl, s) = run(
            b"\xEF\xBB\xBF{\"a\":{\"b\":1}}\r\n\r\n   \n[1]\n{\"c\":2}",
            Format::Ndjson,
        );
        assert_eq!(out, "{\"a_b\":1}\n{\"c\":2}\n");
        assert!(
            dl.contains("\"line\":4") && dl.contains("not a JSON object: an array"),
            "{dl}"
        );
        assert_eq!(
            s,
            Summary {
                lines: 5,
                written: 2,
                dead_lettered: 1,
                blank: 2,
                bytes_in: 35
            }
        );
        assert!(s.balanced());
    }

    #[test]
    fn csv_header_from_the_first_good_record() {
        let (out, dl, s) = run(
            b"oops\n{}\n{\"a\":1,\"b\":{\"c\":\"x,y\"}}\n{\"b\":{\"c\":\"z\"}}\n{}\n",
            Format::Csv(None),
        );
        assert_eq!(out, "a,b_c\n1,\"x,y\"\n,z\n,\n");
        assert!(
            dl.contains("\"line\":1")
                && dl.contains(
                    "\"line\":2,\"reason\":\"a record with no fields cannot set the CSV header"
                )
        );
        assert_eq!((s.written, s.dead_lettered), (3, 2));
    }

    #[test]
    fn lines_longer_than_the_read_buffer() {
        let long = format!("{{\"s\":\"{}\"}}\n", "x".repeat(3 * READ_CHUNK));
        let (out, _, s) = run(long.as_bytes(), Format::Ndjson);
        assert_eq!(out, long);
        assert_eq!(s.written, 1);
    }
}
