//! How long `validate` + `render` take for every shipped environment.
//! Target: milliseconds, not seconds. Run: `cargo bench --bench render`.

use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use lakectl::{render, spec};

fn bench(c: &mut Criterion) {
    let env_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("environments");
    let envs = spec::list_environments(&env_dir).unwrap();
    c.bench_function("load+validate+render all environments", |b| {
        b.iter(|| {
            for env in &envs {
                let (loaded, _) = spec::load_valid(&env_dir, env).unwrap();
                std::hint::black_box(render::render(&loaded).unwrap());
            }
        })
    });
    let (poc, _) = spec::load_valid(&env_dir, "poc").unwrap();
    c.bench_function("render poc (9 stacks)", |b| {
        b.iter(|| render::render(&poc).unwrap())
    });
    c.bench_function("load+validate poc", |b| {
        b.iter(|| spec::load_valid(&env_dir, "poc").unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
