//! Deterministic records shaped like kafka-connect-datagen's `orders` and
//! `pageviews` quickstarts (`orders.avsc`, `pageviews.avsc`), optionally in
//! JsonConverter envelopes.
//!
//! Owns: the record shape and the seeded generator used by benchmarks,
//! tests and the demo. Must not: know where records go (files, Kinesis).

use std::io::Write;

/// 2019-11-13T15:00:00Z, the hour seed 000 partitions (`ordertime=2019111315`).
pub const DEFAULT_START_MS: i64 = 1_573_657_200_000;

/// The Kafka Connect schema that JsonConverter puts beside each payload.
const ENVELOPE_SCHEMA: &str = r#"{"type":"struct","fields":[{"type":"int64","optional":false,"field":"ordertime"},{"type":"int32","optional":false,"field":"orderid"},{"type":"string","optional":false,"field":"itemid"},{"type":"double","optional":false,"field":"orderunits"},{"type":"struct","fields":[{"type":"string","optional":false,"field":"city"},{"type":"string","optional":false,"field":"state"},{"type":"int64","optional":false,"field":"zipcode"}],"optional":false,"name":"ksql.address","field":"address"}],"optional":false,"name":"ksql.orders"}"#;

const PAGEVIEWS_ENVELOPE_SCHEMA: &str = r#"{"type":"struct","fields":[{"type":"int64","optional":false,"field":"viewtime"},{"type":"string","optional":false,"field":"userid"},{"type":"string","optional":false,"field":"pageid"}],"optional":false,"name":"ksql.pageviews"}"#;

/// Which kafka-connect-datagen quickstart the records are shaped like.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Quickstart {
    /// `{"ordertime", "orderid", "itemid", "orderunits", "address": {…}}`.
    #[default]
    Orders,
    /// `{"viewtime", "userid", "pageid"}`.
    Pageviews,
}

/// Generator settings.
#[derive(Debug, Clone)]
pub struct OrderSpec {
    pub quickstart: Quickstart,
    pub seed: u64,
    /// Time of the first record (`ordertime`, `viewtime`), epoch milliseconds.
    pub start_ms: i64,
    /// Each order is 0..=max_step_ms after the previous one.
    pub max_step_ms: u64,
    /// Wrap each order in a JsonConverter envelope.
    pub envelope: bool,
}

impl Default for OrderSpec {
    fn default() -> Self {
        OrderSpec {
            quickstart: Quickstart::Orders,
            seed: 1,
            start_ms: DEFAULT_START_MS,
            max_step_ms: 1000,
            envelope: false,
        }
    }
}

/// SplitMix64: tiny, fast and fully deterministic across platforms.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Produces orders one by one.
pub struct Orders {
    spec: OrderSpec,
    rng: SplitMix64,
    orderid: u64,
    time_ms: i64,
}

impl Orders {
    pub fn new(spec: OrderSpec) -> Self {
        Orders {
            rng: SplitMix64(spec.seed),
            orderid: 0,
            time_ms: spec.start_ms,
            spec,
        }
    }

    /// Append the next record (one line, with its newline) to `out`.
    pub fn write_next(&mut self, out: &mut Vec<u8>) {
        if self.spec.quickstart == Quickstart::Pageviews {
            return self.write_pageview(out);
        }
        let r = &mut self.rng;
        let itemid = r.below(1000);
        let units = (r.next() >> 11) as f64 / (1u64 << 53) as f64 * 10.0;
        let (city, state, zip) = (r.below(100), r.below(100), 10000 + r.below(90000));
        if self.spec.envelope {
            out.extend_from_slice(b"{\"schema\":");
            out.extend_from_slice(ENVELOPE_SCHEMA.as_bytes());
            out.extend_from_slice(b",\"payload\":");
        }
        let _ = write!(
            out,
            "{{\"ordertime\":{},\"orderid\":{},\"itemid\":\"Item_{itemid}\",\"orderunits\":{units},\"address\":{{\"city\":\"City_{city}\",\"state\":\"State_{state}\",\"zipcode\":{zip}}}}}",
            self.time_ms, self.orderid
        );
        if self.spec.envelope {
            out.push(b'}');
        }
        out.push(b'\n');
        self.orderid += 1;
        self.time_ms += self.rng.below(self.spec.max_step_ms + 1) as i64;
    }
}

impl Orders {
    fn write_pageview(&mut self, out: &mut Vec<u8>) {
        let r = &mut self.rng;
        let (user, page) = (1 + r.below(9), 1 + r.below(99));
        if self.spec.envelope {
            out.extend_from_slice(b"{\"schema\":");
            out.extend_from_slice(PAGEVIEWS_ENVELOPE_SCHEMA.as_bytes());
            out.extend_from_slice(b",\"payload\":");
        }
        let _ = write!(
            out,
            "{{\"viewtime\":{},\"userid\":\"User_{user}\",\"pageid\":\"Page_{page}\"}}",
            self.time_ms
        );
        if self.spec.envelope {
            out.push(b'}');
        }
        out.push(b'\n');
        self.orderid += 1;
        self.time_ms += self.rng.below(self.spec.max_step_ms + 1) as i64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_shaped_like_the_schema() {
        let gen = |seed| {
            let mut o = Orders::new(OrderSpec {
                seed,
                ..OrderSpec::default()
            });
            let mut out = Vec::new();
            for _ in 0..100 {
                o.write_next(&mut out);
            }
            out
        };
        assert_eq!(gen(7), gen(7));
        assert_ne!(gen(7), gen(8));
        let first: serde_json::Value =
            serde_json::from_slice(gen(7).split(|&b| b == b'\n').next().unwrap()).unwrap();
        assert_eq!(first["ordertime"], DEFAULT_START_MS);
        assert_eq!(first["orderid"], 0);
        assert!(first["itemid"].as_str().unwrap().starts_with("Item_"));
        assert!(first["orderunits"].is_f64());
        assert!(first["address"]["zipcode"].is_u64());
    }

    #[test]
    fn envelopes_wrap_the_same_payload() {
        let mut plain = Vec::new();
        Orders::new(OrderSpec::default()).write_next(&mut plain);
        let mut wrapped = Vec::new();
        Orders::new(OrderSpec {
            envelope: true,
            ..OrderSpec::default()
        })
        .write_next(&mut wrapped);
        let p: serde_json::Value = serde_json::from_slice(&plain).unwrap();
        let w: serde_json::Value = serde_json::from_slice(&wrapped).unwrap();
        assert_eq!(w["payload"], p);
        assert_eq!(w["schema"]["name"], "ksql.orders");
    }

    #[test]
    fn pageviews_are_shaped_like_their_schema() {
        let mut out = Vec::new();
        Orders::new(OrderSpec {
            quickstart: Quickstart::Pageviews,
            ..OrderSpec::default()
        })
        .write_next(&mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["viewtime"], DEFAULT_START_MS);
        assert!(v["userid"].as_str().unwrap().starts_with("User_"));
        assert!(v["pageid"].as_str().unwrap().starts_with("Page_"));
        assert_eq!(v.as_object().unwrap().len(), 3);
    }
}
