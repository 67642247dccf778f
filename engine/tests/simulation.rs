//! Deterministic simulation of the engine against the reference server's request handling:
//! seeded network faults, lost acknowledgements, crashes, skewed clocks, concurrent writers, and
//! maintenance that expires, evicts and compacts.
//!
//! `cargo test` runs 1,000 seeds; `make test` runs 20,000 more in a release build (a failure
//! can be rarer than one in a thousand seeds). `SIM_SEEDS=100000` runs more (soak: about 22 min
//! on 2 cores in release), `SIM_FIRST_SEED=<n>` starts them elsewhere than at 0; `SIM_SEED=<n>`
//! replays one.

mod sim;

use chat_sync_engine::BrokenVariant;
use sim::World;

/// Runs `seeds` and panics with the first failing seed and how to replay it.
fn run_seeds(
    seeds: impl Iterator<Item = u64>,
    broken: Option<BrokenVariant>,
) -> Result<usize, String> {
    let mut count = 0;
    for seed in seeds {
        let (summary, result) = World::new(seed, broken).run();
        if let Err(failure) = result {
            return Err(format!(
                "seed {seed} failed: {failure}\n  world: {summary}\n  replay: SIM_SEED={seed} cargo test -p chat-sync-engine --test simulation"
            ));
        }
        count += 1;
    }
    Ok(count)
}

/// The seeds of this run, split into `parts` slices so the test threads share them.
fn seeds(part: u64, parts: u64) -> Box<dyn Iterator<Item = u64>> {
    if let Ok(seed) = std::env::var("SIM_SEED") {
        let seed: u64 = seed.parse().expect("SIM_SEED is a number");
        return Box::new((part == 0).then_some(seed).into_iter());
    }
    let number = |name: &str| {
        std::env::var(name).ok().map(|n| {
            n.parse::<u64>()
                .unwrap_or_else(|_| panic!("{name} is a number"))
        })
    };
    let total = number("SIM_SEEDS").unwrap_or(1_000);
    let first = number("SIM_FIRST_SEED").unwrap_or(0);
    Box::new((first..first + total).filter(move |seed| seed % parts == part))
}

macro_rules! seed_slice {
    ($name:ident, $part:expr) => {
        #[test]
        fn $name() {
            if let Err(failure) = run_seeds(seeds($part, 4), None) {
                panic!("{failure}");
            }
        }
    };
}

seed_slice!(
    every_message_once_in_order_and_all_devices_converge_seeds_0,
    0
);
seed_slice!(
    every_message_once_in_order_and_all_devices_converge_seeds_1,
    1
);
seed_slice!(
    every_message_once_in_order_and_all_devices_converge_seeds_2,
    2
);
seed_slice!(
    every_message_once_in_order_and_all_devices_converge_seeds_3,
    3
);

#[test]
fn committing_the_cursor_before_the_data_is_caught() {
    let result = run_seeds(0..200, Some(BrokenVariant::CursorBeforeData));
    let failure = result.expect_err("the simulation must catch a cursor stored before its data");
    assert!(failure.contains("did not converge"), "{failure}");
}

#[test]
fn a_fresh_client_id_per_attempt_is_caught() {
    let result = run_seeds(0..200, Some(BrokenVariant::NewClientIdPerAttempt));
    let failure = result.expect_err("the simulation must catch duplicate deliveries");
    assert!(failure.contains("on the server"), "{failure}");
}

#[test]
#[ignore = "diagnostics"]
fn print_worlds() {
    for seed in 0..40 {
        let (summary, result) = World::new(seed, None).run();
        println!("{seed}: {summary} -> {result:?}");
    }
}
