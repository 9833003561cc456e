//! Library-level flattener throughput on generated orders held in memory
//! (no I/O): `cargo bench -p lake-dataplane --bench flatten`.
//! The end-to-end comparison with jq and Python is `bench/flatten.py`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use lake_contract::schema::columns_from_avro;
use lake_dataplane::datagen::{OrderSpec, Orders};
use lake_dataplane::flatten::{CsvLayout, FlattenConfig, Flattener};

fn orders(count: usize, envelope: bool) -> Vec<u8> {
    let mut gen = Orders::new(OrderSpec {
        envelope,
        ..OrderSpec::default()
    });
    let mut buf = Vec::new();
    for _ in 0..count {
        gen.write_next(&mut buf);
    }
    buf
}

fn bench(c: &mut Criterion) {
    let schema = include_str!("../tests/data/orders.avsc");
    let layout = CsvLayout::new(columns_from_avro(schema, "_").unwrap()).unwrap();
    let mut group = c.benchmark_group("flatten");
    for (name, envelope) in [("orders", false), ("orders in envelopes", true)] {
        let input = orders(20_000, envelope);
        let lines: Vec<&[u8]> = input
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        group.throughput(Throughput::Bytes(input.len() as u64));
        let mut f = Flattener::new(FlattenConfig::default());
        let mut out = Vec::with_capacity(input.len() * 2);
        group.bench_function(format!("{name} -> ndjson"), |b| {
            b.iter(|| {
                out.clear();
                for line in &lines {
                    f.flatten_ndjson(line, &mut out).unwrap();
                }
            })
        });
        group.bench_function(format!("{name} -> csv"), |b| {
            b.iter(|| {
                out.clear();
                for line in &lines {
                    f.flatten_csv(line, &layout, &mut out).unwrap();
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
