//! Unit tests of the flattener across its parts.

use super::sink::bytes_eq;
use super::*;

fn ndjson(input: &str) -> Result<String, ErrorKind> {
    let mut f = Flattener::new(FlattenConfig::default());
    let mut out = b"prefix|".to_vec();
    let r = f.flatten_ndjson(input.as_bytes(), &mut out);
    match r {
        Ok(()) => Ok(String::from_utf8(out)
            .unwrap()
            .strip_prefix("prefix|")
            .unwrap()
            .to_string()),
        Err(e) => {
            assert_eq!(out, b"prefix|", "output untouched on error");
            Err(e)
        }
    }
}

#[test]
fn nested_objects_flatten_in_order_and_values_stay_byte_exact() {
    assert_eq!(
        ndjson(r#"{"a":1.50,"b":{"c":"x\u0041","d":{"e":[1, {"f":2}]}},"g":null,"h":{}}"#).unwrap(),
        "{\"a\":1.50,\"b_c\":\"x\\u0041\",\"b_d_e\":[1, {\"f\":2}],\"g\":null}\n"
    );
    assert_eq!(ndjson(" { } ").unwrap(), "{}\n");
    assert_eq!(
        ndjson(r#"{"n":123456789012345678901234567890e-99999}"#).unwrap(),
        "{\"n\":123456789012345678901234567890e-99999}\n"
    );
}

#[test]
fn envelopes_are_unwrapped_only_when_exact() {
    let env = r#"{"schema":{"type":"struct"},"payload":{"a":{"b":1}}}"#;
    assert_eq!(ndjson(env).unwrap(), "{\"a_b\":1}\n");
    let escaped = r#"{"sch\u0065ma":1,"payload":{"a":1}}"#;
    assert_eq!(ndjson(escaped).unwrap(), "{\"a\":1}\n");
    let reversed = r#"{"payload":{"a":1},"schema":null}"#;
    assert_eq!(ndjson(reversed).unwrap(), "{\"a\":1}\n");
    let extra = r#"{"schema":1,"payload":{"a":1},"x":2}"#;
    assert_eq!(
        ndjson(extra).unwrap(),
        "{\"schema\":1,\"payload_a\":1,\"x\":2}\n"
    );
    assert_eq!(
        ndjson(r#"{"schema":{},"payload":"text"}"#),
        Err(ErrorKind::EnvelopePayload { found: "a string" })
    );
    assert!(matches!(
        ndjson(r#"{"schema":{},"payload":{"a":1}} x"#),
        Err(ErrorKind::Trailing { .. })
    ));
}

#[test]
fn collisions_are_found_on_decoded_keys() {
    assert_eq!(
        ndjson(r#"{"a_b":1,"a":{"b":2}}"#),
        Err(ErrorKind::Collision { key: "a_b".into() })
    );
    assert_eq!(
        ndjson(r#"{"a\u005fb":1,"a":{"b":2}}"#),
        Err(ErrorKind::Collision { key: "a_b".into() })
    );
    assert_eq!(
        ndjson(r#"{"k":1,"k":2}"#),
        Err(ErrorKind::Collision { key: "k".into() })
    );
    let wide: String = (0..500)
        .map(|i| format!("\"k{i}\":{i}"))
        .collect::<Vec<_>>()
        .join(",");
    assert!(
        ndjson(&format!("{{{wide}}}")).is_ok(),
        "hundreds of keys: the set grows"
    );
    assert!(ndjson(&format!("{{{wide},\"k7\":0}}")).is_err());
}

#[test]
fn rejects_what_is_not_an_object() {
    assert_eq!(
        ndjson("[1,2]"),
        Err(ErrorKind::NotObject { found: "an array" })
    );
    assert_eq!(
        ndjson("42"),
        Err(ErrorKind::NotObject { found: "a number" })
    );
    assert!(matches!(ndjson("{\"a\":1"), Err(ErrorKind::Syntax { .. })));
    assert!(matches!(
        ndjson("{\"a\":1} {}"),
        Err(ErrorKind::Trailing { at: 8 })
    ));
    assert!(matches!(
        ndjson("{\"a\":1}}"),
        Err(ErrorKind::Trailing { at: 7 })
    ));
    assert!(
        matches!(ndjson("\u{feff}{}"), Err(ErrorKind::Syntax { .. })),
        "BOMs are stripped by the stream, not here"
    );
}

#[test]
fn depth_limit_counts_objects_and_arrays() {
    let f = |n: usize| "{\"a\":".repeat(n) + "1" + &"}".repeat(n);
    let mut fl = Flattener::new(FlattenConfig {
        max_depth: 3,
        ..FlattenConfig::default()
    });
    let mut out = Vec::new();
    assert!(fl.flatten_ndjson(f(3).as_bytes(), &mut out).is_ok());
    assert_eq!(
        fl.flatten_ndjson(f(4).as_bytes(), &mut out),
        Err(ErrorKind::TooDeep { limit: 3 })
    );
    assert_eq!(
        fl.flatten_ndjson(br#"{"a":{"b":[[1]]}}"#, &mut out),
        Err(ErrorKind::TooDeep { limit: 3 })
    );
}

#[test]
fn short_equality_matches_slice_equality() {
    let words: Vec<Vec<u8>> = (0..36)
        .flat_map(|n| {
            [
                vec![b'a'; n],
                [vec![b'a'; n.saturating_sub(1)], vec![b'b'; n.min(1)]].concat(),
            ]
        })
        .collect();
    for a in &words {
        for b in &words {
            assert_eq!(bytes_eq(a, b), a == b, "{a:?} {b:?}");
        }
    }
    assert!(
        !bytes_eq(b"abc", b"axc")
            && !bytes_eq(b"abcde", b"abXde")
            && !bytes_eq(b"0123456789", b"0123X56789")
    );
}

#[test]
fn the_time_field_is_captured_while_flattening() {
    let mut f = Flattener::new(FlattenConfig::default());
    f.capture("meta_ts");
    let mut out = Vec::new();
    let rec = br#"{"a":1,"meta":{"ts":"2019-11-13 15:00:00"}}"#;
    f.flatten_ndjson(rec, &mut out).unwrap();
    assert_eq!(
        f.captured(rec),
        Some((&b"\"2019-11-13 15:00:00\""[..], ValueKind::String))
    );
    f.flatten_ndjson(br#"{"a":2}"#, &mut out).unwrap();
    assert_eq!(f.captured(br#"{"a":2}"#), None, "reset per record");
}

#[test]
fn separator_is_configurable_and_checked() {
    let mut f = Flattener::new(FlattenConfig {
        separator: b".".to_vec(),
        ..FlattenConfig::default()
    });
    let mut out = Vec::new();
    f.flatten_ndjson(br#"{"a":{"b":1}}"#, &mut out).unwrap();
    assert_eq!(out, b"{\"a.b\":1}\n");
    let bad = FlattenConfig {
        separator: b"\"".to_vec(),
        ..FlattenConfig::default()
    };
    assert!(bad.check().is_err());
}

/// Counts which walk handed each leaf over.
#[derive(Default)]
struct WalkCounter {
    full: usize,
    shaped: usize,
}

impl sink::Sink for WalkCounter {
    /// A walk that stops short leaves part of a record: the next begins again.
    fn begin(&mut self, _: &mut Vec<u8>) {
        *self = WalkCounter::default();
    }
    fn leaf(&mut self, _: &mut Vec<u8>, _: &Leaf<'_>) -> Result<(), ErrorKind> {
        self.full += 1;
        Ok(())
    }
    fn shaped_leaf(
        &mut self,
        _: &mut Vec<u8>,
        _: &Leaf<'_>,
        _: &[u8],
        _: sink::ShapeSlot,
    ) -> Result<(), ErrorKind> {
        self.shaped += 1;
        Ok(())
    }
    fn end(&mut self, _: &mut Vec<u8>, _: &[u8]) -> Result<(), ErrorKind> {
        Ok(())
    }
    fn detects_collisions(&self) -> bool {
        false
    }
}

#[test]
fn a_record_shaped_like_the_last_skips_the_full_walk() {
    let mut f = Flattener::new(FlattenConfig::default());
    f.capture("m_ts");
    let walks = |f: &mut Flattener, record: &str| {
        let mut counter = WalkCounter::default();
        f.run(record.as_bytes(), &mut Vec::new(), &mut counter)
            .unwrap();
        (counter.full, counter.shaped)
    };
    assert_eq!(walks(&mut f, r#"{"a":1,"m":{"ts":5,"s":"x"}}"#), (3, 0));
    // Other values, same bytes between them: the shaped walk.
    let same = r#"{"a":-2.5e3,"m":{"ts":"2019","s":"a \"long\" string"}}"#;
    assert_eq!(walks(&mut f, same), (0, 3));
    assert_eq!(
        f.captured(same.as_bytes()),
        Some((&br#""2019""#[..], ValueKind::String))
    );
    // A space, another key, a nested value, a missing key or trailing space
    // (each against the shape of the record before it): the full walk.
    for other in [
        r#"{"a":1, "m":{"ts":5,"s":"x"}}"#,
        r#"{"b":1,"m":{"ts":5,"s":"x"}}"#,
        r#"{"a":{"z":1},"m":{"ts":5,"s":"x"}}"#,
        r#"{"a":1,"m":{"ts":5}}"#,
        r#"{"a":1,"m":{"ts":5,"s":"x"}} "#,
    ] {
        let (full, shaped) = walks(&mut f, other);
        assert!(full > 0 && shaped == 0, "{other}");
    }
    // The last record accepted is the new shape.
    assert_eq!(walks(&mut f, r#"{"a":7,"m":{"ts":5,"s":"x"}} "#), (0, 3));
}

#[test]
fn a_shapes_column_memo_follows_the_layout() {
    let ab = CsvLayout::new(vec!["a".into(), "m_b".into()]).unwrap();
    let ba = CsvLayout::new(vec!["m_b".into(), "a".into()]).unwrap();
    let mut f = Flattener::new(FlattenConfig::default());
    let mut out = Vec::new();
    for (i, layout) in [&ab, &ab, &ba, &ba, &ab].into_iter().enumerate() {
        let record = format!(r#"{{"a":{i},"m":{{"b":"x{i}"}}}}"#);
        out.clear();
        f.flatten_csv(record.as_bytes(), layout, &mut out).unwrap();
        let want = if std::ptr::eq(layout, &ab) {
            format!("{i},x{i}\n")
        } else {
            format!("x{i},{i}\n")
        };
        assert_eq!(String::from_utf8_lossy(&out), want, "record {i}");
    }
}

#[test]
fn one_odd_record_keeps_the_usual_shape() {
    let mut f = Flattener::new(FlattenConfig::default());
    let walks = |f: &mut Flattener, record: &str| {
        let mut counter = WalkCounter::default();
        f.run(record.as_bytes(), &mut Vec::new(), &mut counter)
            .unwrap();
        (counter.full, counter.shaped)
    };
    let usual = r#"{"a":1,"b":{"c":2}}"#;
    let odd = r#"{"a":1,"b":{"c":2},"gift":true}"#;
    assert_eq!(walks(&mut f, usual), (2, 0));
    assert_eq!(walks(&mut f, usual), (0, 2));
    assert_eq!(walks(&mut f, odd), (3, 0));
    assert_eq!(
        walks(&mut f, usual),
        (0, 2),
        "the odd record did not replace the shape"
    );
    // Two odd records in a row: the stream has changed, and so does the shape.
    assert_eq!(walks(&mut f, odd), (3, 0));
    assert_eq!(walks(&mut f, odd), (3, 0));
    assert_eq!(walks(&mut f, odd), (0, 3));
}

/// Counts `begin` calls: a shaped attempt begins the sink once, the full walk once more.
#[derive(Default)]
struct BeginCounter(usize);

impl sink::Sink for BeginCounter {
    fn begin(&mut self, _: &mut Vec<u8>) {
        self.0 += 1;
    }
    fn leaf(&mut self, _: &mut Vec<u8>, _: &Leaf<'_>) -> Result<(), ErrorKind> {
        Ok(())
    }
    fn end(&mut self, _: &mut Vec<u8>, _: &[u8]) -> Result<(), ErrorKind> {
        Ok(())
    }
    fn detects_collisions(&self) -> bool {
        false
    }
}

#[test]
fn records_that_keep_changing_shape_rest_the_shaped_walk() {
    let mut f = Flattener::new(FlattenConfig::default());
    let shapes = [r#"{"a":1}"#, r#"{"b":1}"#, r#"{"c":1}"#];
    let mut begins = Vec::new();
    for i in 0..300 {
        let mut counter = BeginCounter::default();
        f.run(shapes[i % 3].as_bytes(), &mut Vec::new(), &mut counter)
            .unwrap();
        begins.push(counter.0);
    }
    // While it tries, every record pays a failed match and the full walk;
    // after a window of misses, only the full walk.
    assert!(begins[2..64].iter().all(|&n| n == 2), "{begins:?}");
    assert!(begins[64..].iter().all(|&n| n == 1), "{begins:?}");
}
