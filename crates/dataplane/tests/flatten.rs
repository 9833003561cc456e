//! The flattener against references: generated documents (proptest), a
//! bounded differential fuzz against serde_json, and golden dead letters
//! through the `lake-ingest flatten` command.

use std::process::Command;

use lake_dataplane::flatten::{ErrorKind, FlattenConfig, Flattener};
use lake_testkit::{repo_root, tempdir};
use proptest::prelude::*;
use serde_json::Value;

// ---------------------------------------------------------------------------
// Generated documents that remember their exact text.

/// A JSON document with the raw text of every key and scalar, so the
/// expected output can be computed byte for byte.
#[derive(Debug, Clone)]
enum Doc {
    Obj(Vec<(Key, Doc)>, Ws),
    Arr(Vec<Doc>, Ws),
    /// Raw JSON text of a string, number, bool or null.
    Scalar(String),
}

#[derive(Debug, Clone)]
struct Key {
    decoded: String,
    raw: String,
}

/// Whitespace choices around punctuation.
#[derive(Debug, Clone, Copy)]
struct Ws(bool);

impl Ws {
    fn pad(self) -> &'static str {
        if self.0 {
            " \t"
        } else {
            ""
        }
    }
}

/// Encode `s` as a JSON string body, escaping where required and, where
/// `fancy` says so, where merely allowed (`\uXXXX`, `\/`).
fn encode(s: &str, fancy: &[bool]) -> String {
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        let f = fancy.get(i % fancy.len().max(1)).copied().unwrap_or(false);
        match ch {
            '"' => out.push_str(if f { "\\u0022" } else { "\\\"" }),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '/' if f => out.push_str("\\/"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if f => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{:04X}", u));
                }
            }
            c => out.push(c),
        }
    }
    out
}

fn text_strategy() -> impl Strategy<Value = (String, Vec<bool>)> {
    let chars = prop::sample::select(vec![
        'a', 'b', '_', ' ', 'é', '中', '😀', '"', '\\', '/', '\n', '\u{1}', 'z',
    ]);
    (
        prop::collection::vec(chars, 0..6).prop_map(|v| v.into_iter().collect::<String>()),
        prop::collection::vec(any::<bool>(), 1..4),
    )
}

fn key_strategy() -> impl Strategy<Value = Key> {
    // A small alphabet so flattened keys collide now and then.
    let plain = prop::sample::select(vec![
        "a", "b", "a_b", "b_a", "c", "é", "x\"y", "schema", "payload", "",
    ]);
    (plain, prop::collection::vec(any::<bool>(), 1..3)).prop_map(|(k, fancy)| Key {
        decoded: k.to_string(),
        raw: encode(k, &fancy),
    })
}

fn number_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        Just("0".to_string()),
        Just("-0".to_string()),
        Just("123456789012345678901234567890123".to_string()),
        Just("1E+2".to_string()),
        Just("-1.5e-300".to_string()),
        (any::<u32>(), 0u32..1000, any::<bool>()).prop_map(|(a, b, e)| if e {
            format!("{a}.{b}e{b}")
        } else {
            format!("-{a}.{b}")
        }),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| f.to_string()),
    ]
}

fn scalar_strategy() -> impl Strategy<Value = Doc> {
    prop_oneof![
        text_strategy().prop_map(|(s, f)| Doc::Scalar(format!("\"{}\"", encode(&s, &f)))),
        number_strategy().prop_map(Doc::Scalar),
        Just(Doc::Scalar("true".into())),
        Just(Doc::Scalar("false".into())),
        Just(Doc::Scalar("null".into())),
    ]
}

fn doc_strategy() -> impl Strategy<Value = Doc> {
    scalar_strategy().prop_recursive(4, 40, 5, |inner| {
        prop_oneof![
            (prop::collection::vec(inner.clone(), 0..4), any::<bool>())
                .prop_map(|(v, w)| Doc::Arr(v, Ws(w))),
            (
                prop::collection::vec((key_strategy(), inner), 0..5),
                any::<bool>()
            )
                .prop_map(|(mut fields, w)| {
                    // Unique decoded keys per object (duplicates are tested separately).
                    let mut seen = std::collections::HashSet::new();
                    fields.retain(|(k, _)| seen.insert(k.decoded.clone()));
                    Doc::Obj(fields, Ws(w))
                }),
        ]
    })
}

fn top_strategy() -> impl Strategy<Value = Doc> {
    (
        prop::collection::vec((key_strategy(), doc_strategy()), 0..6),
        any::<bool>(),
    )
        .prop_map(|(mut fields, w)| {
            let mut seen = std::collections::HashSet::new();
            fields.retain(|(k, _)| seen.insert(k.decoded.clone()));
            Doc::Obj(fields, Ws(w))
        })
}

fn write_doc(doc: &Doc, out: &mut String) {
    match doc {
        Doc::Scalar(s) => out.push_str(s),
        Doc::Arr(items, ws) => {
            out.push('[');
            out.push_str(ws.pad());
            for (i, d) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                    out.push_str(ws.pad());
                }
                write_doc(d, out);
            }
            out.push_str(ws.pad());
            out.push(']');
        }
        Doc::Obj(fields, ws) => {
            out.push('{');
            out.push_str(ws.pad());
            for (i, (k, d)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                    out.push_str(ws.pad());
                }
                out.push('"');
                out.push_str(&k.raw);
                out.push('"');
                out.push_str(ws.pad());
                out.push(':');
                out.push_str(ws.pad());
                write_doc(d, out);
            }
            out.push_str(ws.pad());
            out.push('}');
        }
    }
}

/// The byte-exact reference: leaves in order as (decoded key, raw key, raw value).
fn reference_leaves(doc: &Doc, decoded: &str, raw: &str, out: &mut Vec<(String, String, String)>) {
    if let Doc::Obj(fields, _) = doc {
        for (k, d) in fields {
            match d {
                Doc::Obj(..) => reference_leaves(
                    d,
                    &format!("{decoded}{}_", k.decoded),
                    &format!("{raw}{}_", k.raw),
                    out,
                ),
                _ => {
                    let mut text = String::new();
                    write_doc(d, &mut text);
                    out.push((
                        format!("{decoded}{}", k.decoded),
                        format!("{raw}{}", k.raw),
                        text,
                    ));
                }
            }
        }
    }
}

fn expected_ndjson(doc: &Doc) -> Result<String, String> {
    // JsonConverter envelope: exactly `schema` and `payload` (decoded).
    let doc = match doc {
        Doc::Obj(fields, _)
            if fields.len() == 2 && {
                let mut names: Vec<&str> = fields.iter().map(|(k, _)| k.decoded.as_str()).collect();
                names.sort();
                names == ["payload", "schema"]
            } =>
        {
            match &fields
                .iter()
                .find(|(k, _)| k.decoded == "payload")
                .unwrap()
                .1
            {
                p @ Doc::Obj(..) => p,
                _ => return Err("envelope payload".into()),
            }
        }
        d => d,
    };
    let mut leaves = Vec::new();
    reference_leaves(doc, "", "", &mut leaves);
    let mut seen = std::collections::HashSet::new();
    for (k, _, _) in &leaves {
        if !seen.insert(k.clone()) {
            return Err(format!("collision {k}"));
        }
    }
    let body: Vec<String> = leaves
        .iter()
        .map(|(_, raw, v)| format!("\"{raw}\":{v}"))
        .collect();
    Ok(format!("{{{}}}\n", body.join(",")))
}

/// The serde_json reference: flatten a Value (preserve_order keeps input order).
fn serde_flatten(v: &Value, prefix: &str, out: &mut Vec<(String, Value)>) {
    if let Value::Object(map) = v {
        for (k, v) in map {
            match v {
                Value::Object(_) => serde_flatten(v, &format!("{prefix}{k}_"), out),
                _ => out.push((format!("{prefix}{k}"), v.clone())),
            }
        }
    }
}

fn ours(input: &str) -> Result<String, ErrorKind> {
    let mut f = Flattener::new(FlattenConfig::default());
    let mut out = Vec::new();
    f.flatten_ndjson(input.as_bytes(), &mut out)?;
    Ok(String::from_utf8(out).expect("output is UTF-8"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn byte_exact_against_the_reference(doc in top_strategy()) {
        let mut text = String::new();
        write_doc(&doc, &mut text);
        match (expected_ndjson(&doc), ours(&text)) {
            (Ok(want), Ok(got)) => prop_assert_eq!(got, want, "input {}", text),
            (Err(_), Err(ErrorKind::Collision { .. } | ErrorKind::EnvelopePayload { .. })) => {}
            (want, got) => prop_assert!(false, "input {}\nwant {:?}\ngot {:?}", text, want, got),
        }
    }

    #[test]
    fn same_data_as_serde_json(doc in top_strategy()) {
        let mut text = String::new();
        write_doc(&doc, &mut text);
        let value: Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            // serde_json stops at f64's range; JSON does not (byte-exact test covers those).
            Err(e) if e.to_string().contains("number out of range") => return Ok(()),
            Err(e) => panic!("generated JSON is invalid ({e}): {text}"),
        };
        if let Ok(got) = ours(&text) {
            let parsed: Value = serde_json::from_str(&got).expect("our output is valid JSON");
            let unwrapped = match &value {
                Value::Object(m) if m.len() == 2 && m.contains_key("schema") && m.contains_key("payload") => &m["payload"],
                v => v,
            };
            let mut want = Vec::new();
            serde_flatten(unwrapped, "", &mut want);
            let got: Vec<(String, Value)> = parsed.as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            prop_assert_eq!(got, want, "input {}", text);
        }
    }

    #[test]
    fn csv_has_one_field_per_column_and_decodes_strings(doc in top_strategy()) {
        let mut text = String::new();
        write_doc(&doc, &mut text);
        let mut f = Flattener::new(FlattenConfig::default());
        if let (Ok(keys), Ok(ndjson)) = (f.keys(text.as_bytes()), ours(&text)) {
            if keys.is_empty() || serde_json::from_str::<Value>(&ndjson).is_err() {
                return Ok(()); // no columns; or numbers beyond serde_json's range
            }
            let layout = lake_dataplane::flatten::CsvLayout::new(keys.clone()).unwrap();
            let mut row = Vec::new();
            f.flatten_csv(text.as_bytes(), &layout, &mut row).unwrap();
            let flat: Value = serde_json::from_str(&ndjson).unwrap();
            let fields = csv_reader(&row).next().expect("one row");
            let mut leaves = Vec::new();
            let unwrapped = match &doc {
                Doc::Obj(fields, _) if fields.len() == 2 && fields.iter().any(|(k, _)| k.decoded == "schema") && fields.iter().any(|(k, _)| k.decoded == "payload") => {
                    &fields.iter().find(|(k, _)| k.decoded == "payload").unwrap().1
                }
                d => d,
            };
            reference_leaves(unwrapped, "", "", &mut leaves);
            let raw: std::collections::HashMap<String, String> = leaves.into_iter().map(|(k, _, v)| (k, v)).collect();
            prop_assert_eq!(fields.len(), keys.len());
            for (field, key) in fields.iter().zip(&keys) {
                match &flat[key] {
                    Value::Null => prop_assert_eq!(field, ""),
                    Value::String(s) => prop_assert_eq!(field, s, "key {} of {}", key, text),
                    // Numbers and booleans are copied as written: compare with the raw text.
                    Value::Bool(_) | Value::Number(_) => prop_assert_eq!(Some(field), raw.get(key), "key {}", key),
                    // Arrays are written as their JSON text.
                    other => prop_assert_eq!(&serde_json::from_str::<Value>(field).unwrap(), other),
                }
            }
        }
    }
}

/// A minimal RFC 4180 reader for the property above (quoted fields, doubled quotes).
fn csv_reader(data: &[u8]) -> std::vec::IntoIter<Vec<String>> {
    let text = String::from_utf8(data.to_vec()).unwrap();
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let (mut quoted, mut chars) = (false, text.chars().peekable());
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    rows.into_iter()
}

// ---------------------------------------------------------------------------
// Differential fuzz: arbitrary mutations of valid records, judged by serde_json.

/// xorshift: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn mutated_records_never_panic_and_are_judged_like_serde_json() {
    let seeds: Vec<Vec<u8>> = [
        r#"{"ordertime":1573657200000,"orderid":18,"itemid":"Item_184","orderunits":4.75,"address":{"city":"City_72","state":"State_63","zipcode":50827}}"#,
        r#"{"schema":{"type":"struct"},"payload":{"a":{"b":[1,2,{"c":null}]},"d":"\u00e9\ud83d\ude00"}}"#,
        r#"{"a":-0.5e+10,"b":[true,false,null],"c":{"d":{"e":"x\"y\\z"}},"f":{}}"#,
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    let specials = b"{}[]\":,\\ \t\r\n0123456789-+.eEtrufalsn\xff\xc3\xa9\x00u";
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    // One flattener for the whole run takes the shaped walk whenever a record
    // has the last accepted one's shape; a fresh one always takes the full walk.
    let mut f = Flattener::new(FlattenConfig::default());
    f.capture("ordertime");
    let mut out = Vec::new();
    let (mut accepted, mut rejected) = (0u32, 0u32);
    for i in 0..200_000 {
        // One seed for a run of records, a quarter of them left whole: the
        // shaped walk keeps its shape (records of changing shape would rest it).
        let mut input = seeds[(i / 100) % seeds.len()].clone();
        let mutations = if rng.below(4) == 0 {
            0
        } else {
            1 + rng.below(3)
        };
        for _ in 0..mutations {
            let at = rng.below(input.len() + 1);
            match rng.below(4) {
                0 if at < input.len() => {
                    input.remove(at);
                }
                1 => input.insert(at, specials[rng.below(specials.len())]),
                2 if at < input.len() => input[at] = specials[rng.below(specials.len())],
                _ => input.truncate(at),
            }
        }
        out.clear();
        let ours = f.flatten_ndjson(&input, &mut out);
        let mut full = Flattener::new(FlattenConfig::default());
        full.capture("ordertime");
        let mut full_out = Vec::new();
        let full_result = full.flatten_ndjson(&input, &mut full_out);
        assert_eq!(
            (&ours, &out, f.captured(&input)),
            (&full_result, &full_out, full.captured(&input)),
            "the shaped walk and the full walk differ on {}",
            String::from_utf8_lossy(&input)
        );
        let theirs = serde_json::from_slice::<Value>(&input);
        match (&ours, &theirs) {
            (Ok(()), Ok(v)) => {
                accepted += 1;
                assert!(
                    v.is_object(),
                    "accepted a non-object: {}",
                    String::from_utf8_lossy(&input)
                );
                let flat: Value = serde_json::from_slice(&out).expect("our output is JSON");
                // Flattening is idempotent.
                // (A flattener of its own: flat records interleaved with
                // nested ones would keep `f`'s shaped walk resting.)
                let mut again = Vec::new();
                Flattener::new(FlattenConfig::default())
                    .flatten_ndjson(&out[..out.len() - 1], &mut again)
                    .unwrap();
                assert_eq!(again, out);
                // Nested objects are flattened away; empty ones leave no key.
                assert!(flat.as_object().unwrap().values().all(|v| !v.is_object()));
            }
            // serde_json limits numbers to f64's range; the JSON grammar does not.
            (Ok(()), Err(e)) if e.to_string().contains("number out of range") => accepted += 1,
            (Ok(()), Err(e)) => panic!(
                "accepted invalid JSON ({e}): {}",
                String::from_utf8_lossy(&input)
            ),
            (Err(ErrorKind::Collision { .. } | ErrorKind::EnvelopePayload { .. }), Ok(_)) => {
                rejected += 1
            }
            (Err(ErrorKind::NotObject { .. }), Ok(v)) => {
                rejected += 1;
                assert!(!v.is_object());
            }
            (Err(e), Ok(v)) => panic!(
                "rejected valid JSON object {v}: {e}: {}",
                String::from_utf8_lossy(&input)
            ),
            (Err(_), Err(_)) => rejected += 1,
        }
        assert!(
            ours.is_ok() || out.is_empty(),
            "output left behind on error"
        );
    }
    // The mutations must exercise both outcomes, or this test proves little.
    assert!(
        accepted > 5_000 && rejected > 50_000,
        "accepted {accepted}, rejected {rejected}"
    );
}

/// Records mutated in their values and punctuation, flattened to CSV and
/// to typed rows by one long-lived flattener (the shaped walk) and by a
/// fresh one each (the full walk): same rows, same errors.
#[test]
fn shaped_and_full_walks_agree_for_csv_and_typed_rows() {
    use lake_contract::schema::typed_columns_from_avro;
    use lake_dataplane::flatten::{CsvLayout, TypedLayout};
    // The orders schema's columns, as the lake writes them.
    let avsc = std::fs::read_to_string(repo_root().join("crates/dataplane/tests/data/orders.avsc"))
        .unwrap();
    let columns = typed_columns_from_avro(&avsc, "_").unwrap();
    let csv = CsvLayout::new(columns.iter().map(|(name, _)| name.clone()).collect()).unwrap();
    let typed = TypedLayout::new(columns).unwrap();
    let seeds = [
        r#"{"ordertime":1573657200000,"orderid":18,"itemid":"Item_184","orderunits":4.75,"address":{"city":"City_72","state":"State_63","zipcode":50827}}"#,
        r#"{"schema":{"type":"struct"},"payload":{"ordertime":1573657200001,"orderid":19,"itemid":"It\"em","address":{"city":"C","zipcode":1}}}"#,
        r#"{"ordertime":1573657200002,"orderid":20,"itemid":null,"orderunits":1e3,"address":{"city":"City_\u0041","state":"S","zipcode":-7}}"#,
    ];
    let specials = b"{}[]\":,\\ 0123456789-+.eEtrufalsn\xc3\xa9x";
    let mut rng = Rng(7);
    let mut long = Flattener::new(FlattenConfig::default());
    let (mut accepted, mut rejected) = (0u32, 0u32);
    for i in 0..100_000 {
        // One seed for a run of records, as in the test above.
        let mut input = seeds[(i / 100) % seeds.len()].as_bytes().to_vec();
        if rng.below(4) == 0 {
            let at = rng.below(input.len());
            match rng.below(3) {
                0 => input[at] = specials[rng.below(specials.len())],
                1 => input.insert(at, specials[rng.below(specials.len())]),
                _ => {
                    input.remove(at);
                }
            }
        }
        let mut full = Flattener::new(FlattenConfig::default());
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let shaped = long.flatten_csv(&input, &csv, &mut a);
        let whole = full.flatten_csv(&input, &csv, &mut b);
        let text = String::from_utf8_lossy(&input);
        assert_eq!((&shaped, &a), (&whole, &b), "CSV of {text}");
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let shaped = long.flatten_typed(&input, &typed, &mut a);
        let whole = full.flatten_typed(&input, &typed, &mut b);
        assert_eq!((&shaped, &a), (&whole, &b), "typed row of {text}");
        match shaped {
            Ok(()) => accepted += 1,
            Err(_) => rejected += 1,
        }
    }
    assert!(
        accepted > 40_000 && rejected > 5_000,
        "accepted {accepted}, rejected {rejected}"
    );
}

#[test]
fn arbitrary_bytes_never_panic() {
    let mut rng = Rng(42);
    let mut f = Flattener::new(FlattenConfig::default());
    let mut out = Vec::new();
    for _ in 0..50_000 {
        let len = rng.below(64);
        let bytes: Vec<u8> = (0..len).map(|_| (rng.next() >> 56) as u8).collect();
        let _ = f.flatten_ndjson(&bytes, &mut out);
        let mut framed = b"{\"k\":".to_vec();
        framed.extend_from_slice(&bytes);
        framed.push(b'}');
        let _ = f.flatten_ndjson(&framed, &mut out);
    }
    let deep = "[".repeat(100_000);
    assert_eq!(
        f.flatten_ndjson(format!("{{\"a\":{deep}").as_bytes(), &mut out),
        Err(ErrorKind::TooDeep { limit: 64 })
    );
}

// ---------------------------------------------------------------------------
// Golden dead letters through the command.

#[test]
fn golden_dead_letters_and_summary() {
    let golden = repo_root().join("crates/dataplane/tests/golden");
    let dir = tempdir();
    let dl = dir.path().join("dead.ndjson");
    let run = Command::new(env!("CARGO_BIN_EXE_lake-ingest"))
        .current_dir(&golden)
        .args([
            "flatten",
            "--dead-letter",
            dl.to_str().unwrap(),
            "input.ndjson",
        ])
        .output()
        .unwrap();
    assert_eq!(
        run.status.code(),
        Some(2),
        "exit 2 when lines were dead-lettered"
    );
    let expected_out = std::fs::read_to_string(golden.join("expected.out.ndjson")).unwrap();
    let expected_dl = std::fs::read_to_string(golden.join("expected.dead.ndjson")).unwrap();
    assert_eq!(String::from_utf8_lossy(&run.stdout), expected_out);
    assert_eq!(std::fs::read_to_string(&dl).unwrap(), expected_dl);
    let stderr = String::from_utf8_lossy(&run.stderr);
    let input = std::fs::read(golden.join("input.ndjson")).unwrap();
    let lines = input.split(|&b| b == b'\n').count() - usize::from(input.ends_with(b"\n"));
    let (good, bad) = (expected_out.lines().count(), expected_dl.lines().count());
    let blank = lines - good - bad;
    assert_eq!(
        stderr.trim_end(),
        format!(
            "lake-ingest flatten: {lines} lines: {good} written, {bad} dead-lettered, {blank} blank ({} bytes read)",
            input.len()
        )
    );
}

#[test]
fn csv_from_the_orders_schema_and_datagen_roundtrip() {
    let bin = env!("CARGO_BIN_EXE_lake-ingest");
    let dir = tempdir();
    let data = dir.path().join("orders.ndjson");
    let gen = Command::new(bin)
        .args([
            "datagen",
            "--count",
            "1000",
            "--seed",
            "3",
            "--envelope",
            "--output",
            data.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(gen.success());
    let schema = repo_root().join("crates/dataplane/tests/data/orders.avsc");
    let out = Command::new(bin)
        .args([
            "flatten",
            "--format",
            "csv",
            "--schema",
            schema.to_str().unwrap(),
            data.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("ordertime,orderid,itemid,orderunits,address_city,address_state,address_zipcode")
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 1000);
    assert!(rows[0].starts_with("1573657200000,0,Item_"), "{}", rows[0]);
    assert!(rows.iter().all(|r| r.split(',').count() == 7));
}
