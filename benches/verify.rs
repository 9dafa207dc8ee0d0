//! Verify throughput and memory on a store holding 1,000,000 pending challenges.
//!
//! Measures, in one run:
//! - `floor`: one pre-keyed HMAC-SHA256 of a code plus a constant-time compare;
//! - `verify/{correct,wrong}_code/{1,2}_threads`: `OtpService::verify` on `MemoryStore`,
//!   visiting challenges in the order they were started;
//! - `verify/wrong_code/{1,2}_threads/random_order`: the same in uniformly random order, the
//!   worst case for the cache;
//! - bytes per pending challenge (counting allocator and resident set), printed first.
//!
//! Run with `cargo bench --bench verify`.

// The counting allocator below and `pin_to_cpu` are the only unsafe code in the repository:
// a `GlobalAlloc` impl and `sched_setaffinity` cannot be written without it. The allocator
// only forwards to `System`.
#![allow(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::num::{NonZeroU8, NonZeroU32};
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use phone_otp::{
    ChallengeId, FailureCap, HmacKey, KeyRing, Limits, MemoryStore, OtpService, PhoneNumber,
    Purpose, StartRequest, StubProvider, bench_floor,
};
use secrecy::{ExposeSecret, SecretSlice};
use tokio::runtime::Runtime;

struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);
/// Counting is on only while the store is filled: a shared counter touched on every
/// allocation would otherwise slow the timed benches and serialise the two threads.
static COUNTING: AtomicBool = AtomicBool::new(false);

fn count(delta: isize) {
    if COUNTING.load(Ordering::Relaxed) {
        LIVE_BYTES.fetch_add(delta, Ordering::Relaxed);
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize));
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const PENDING: u32 = 1_000_000;

fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn number(i: u32) -> PhoneNumber {
    PhoneNumber::parse(&format!("+81901{:07}", i % 10_000_000)).unwrap()
}

struct Fixture {
    otp: OtpService,
    stub: StubProvider,
    pending: Arc<Vec<ChallengeId>>,
    next_fresh: std::cell::Cell<u32>,
    /// Larger than this machine's per-core L2 (4 MiB), for `evict_caches`.
    eviction_buffer: std::cell::RefCell<Vec<u8>>,
}

impl Fixture {
    /// Starts `PENDING` challenges with realistic subjects and reports their memory.
    fn new(rt: &Runtime) -> Self {
        let store = MemoryStore::new();
        let stub = StubProvider::new();
        let key = HmacKey::new(1, &SecretSlice::from(vec![7u8; 32])).unwrap();
        let otp = OtpService::builder()
            .key_ring(KeyRing::new(key))
            .provider(stub.clone())
            .store(store.clone())
            .limits(Limits::danger_none())
            // Enough attempts that the wrong-code bench never exhausts a challenge, and a
            // failure cap no account reaches: every wrong code takes the counting path.
            .max_attempts(NonZeroU8::MAX)
            .failure_cap(FailureCap::new(
                NonZeroU32::MAX,
                Duration::from_secs(86_400),
            ))
            .build()
            .unwrap();
        let mut pending = Vec::with_capacity(PENDING as usize);
        let rss_before = resident_bytes();
        COUNTING.store(true, Ordering::SeqCst);
        let bytes_before = LIVE_BYTES.load(Ordering::SeqCst);
        let started_at = Instant::now();
        rt.block_on(async {
            for i in 0..PENDING {
                let request =
                    StartRequest::sms(number(i), Purpose::SignIn).subject(format!("user-{i:07}"));
                pending.push(otp.start(request).await.unwrap().challenge_id);
                if i % 10_000 == 0 {
                    stub.clear();
                }
            }
        });
        stub.clear();
        COUNTING.store(false, Ordering::SeqCst);
        let fill_time = started_at.elapsed();
        // The id list is the bench's, not the store's: allocated before counting began, but
        // its pages become resident during the fill.
        let id_list = (pending.capacity() * std::mem::size_of::<ChallengeId>()) as isize;
        let store_bytes = LIVE_BYTES.load(Ordering::SeqCst) - bytes_before;
        println!(
            "memory: {} pending challenges (subject \"user-NNNNNNN\"), {:.1} requested bytes each (counting allocator)",
            store.len(),
            store_bytes as f64 / f64::from(PENDING)
        );
        if let (Some(before), Some(after)) = (rss_before, resident_bytes()) {
            let rss = after.saturating_sub(before) as f64 - id_list as f64;
            println!(
                "memory: resident set grew {:.1} bytes per challenge (includes allocator overhead)",
                rss / f64::from(PENDING)
            );
        }
        println!("setup: {PENDING} starts in {fill_time:.2?}");
        Self {
            otp,
            stub,
            pending: Arc::new(pending),
            next_fresh: std::cell::Cell::new(PENDING),
            eviction_buffer: std::cell::RefCell::new(vec![1; 16 << 20]),
        }
    }

    /// `count` new challenges with their codes, for the correct-code path. Codes are inline
    /// arrays, not `String`s: freeing main-thread allocations on worker threads would
    /// measure glibc's cross-arena frees instead of verify.
    fn fresh(&self, rt: &Runtime, count: u64) -> Vec<(ChallengeId, [u8; 6])> {
        let fresh = rt.block_on(async {
            let mut fresh = Vec::with_capacity(count as usize);
            for _ in 0..count {
                let i = self.next_fresh.get();
                self.next_fresh.set(i.wrapping_add(1));
                let to = number(i);
                let started = self
                    .otp
                    .start(StartRequest::sms(to.clone(), Purpose::SignIn))
                    .await
                    .unwrap();
                let code = self.stub.last_code_for(&to).unwrap();
                let code: [u8; 6] = code.expose_secret().as_bytes().try_into().unwrap();
                fresh.push((started.challenge_id, code));
            }
            self.stub.clear();
            fresh
        });
        self.evict_caches();
        fresh
    }

    /// Pushes the fresh challenges out of this core's caches, as a minute of other traffic
    /// would before a user types the code. Without it the 2-thread run would find half of
    /// them modified in the other core's cache, which no real verify does.
    fn evict_caches(&self) {
        let mut buffer = self.eviction_buffer.borrow_mut();
        for (i, byte) in buffer.iter_mut().enumerate().step_by(64) {
            *byte = byte.wrapping_add(i as u8);
        }
        black_box(&*buffer);
    }
}

/// Keeps the calling thread on CPU `cpu`. Without it the scheduler often wakes both
/// workers on the CPU that released the barrier and runs them there by turns for the first
/// few milliseconds, which halves 2-thread throughput on samples that short.
#[cfg(target_os = "linux")]
fn pin_to_cpu(cpu: usize) {
    // SAFETY: `set` is a plain bit set that lives across the call; pid 0 is this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            eprintln!("could not pin a bench thread to CPU {cpu}; figures may vary more");
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn pin_to_cpu(_cpu: usize) {}

/// Runs `work` split over `threads` OS threads, each pinned to its own CPU, each on its own current-thread runtime,
/// and returns the wall time from a common start.
fn run_split<T: Send + 'static>(
    threads: usize,
    items: Vec<T>,
    work: impl Fn(&Runtime, Vec<T>) + Send + Sync + 'static,
) -> Duration {
    let work = Arc::new(work);
    let barrier = Arc::new(Barrier::new(threads + 1));
    let mut chunks: Vec<Vec<T>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, item) in items.into_iter().enumerate() {
        chunks[i % threads].push(item);
    }
    let handles: Vec<_> = chunks
        .into_iter()
        .enumerate()
        .map(|(index, chunk)| {
            let (work, barrier) = (Arc::clone(&work), Arc::clone(&barrier));
            std::thread::spawn(move || {
                pin_to_cpu(index);
                let rt = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                barrier.wait();
                work(&rt, chunk);
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    for handle in handles {
        handle.join().unwrap();
    }
    start.elapsed()
}

/// The order verify visits the pending challenges in.
#[derive(Clone, Copy)]
enum Order {
    /// The order they were started in: users verify a minute or so after starting, so
    /// this is the common pattern.
    Started,
    /// Uniformly random: every verify touches memory no recent operation did.
    Random,
}

impl Order {
    fn suffix(self) -> &'static str {
        match self {
            Order::Started => "",
            Order::Random => "/random_order",
        }
    }
}

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let fixture = Fixture::new(&rt);

    let mut group = c.benchmark_group("verify");
    group.throughput(Throughput::Elements(1));
    group.sample_size(30);
    group.measurement_time(Duration::from_secs(4));

    let key = HmacKey::new(1, &SecretSlice::from(vec![7u8; 32])).unwrap();
    let id = fixture.pending[0];
    let expected = phone_otp::Digest::from_parts(phone_otp::KeyId(1), [0u8; 32]);
    group.bench_function("floor_hmac_and_compare", |b| {
        b.iter(|| bench_floor(&key, black_box(&id), black_box(b"123456"), &expected))
    });

    for threads in [1usize, 2] {
        for order in [Order::Started, Order::Random] {
            let otp = fixture.otp.clone();
            let pending = Arc::clone(&fixture.pending);
            let cursor = std::sync::atomic::AtomicUsize::new(0);
            let mut random = 0x9E37_79B9_7F4A_7C15_u64;
            group.bench_function(
                format!("wrong_code/{threads}_threads{}", order.suffix()),
                |b| {
                    b.iter_custom(|iters| {
                        // The ids are copied out before timing, so the bench's own id list adds
                        // no cache misses: only the store's accesses follow `order`.
                        let ids: Vec<ChallengeId> = match order {
                            Order::Started => {
                                let start_at = cursor.fetch_add(iters as usize, Ordering::Relaxed);
                                (0..iters as usize)
                                    .map(|i| pending[(start_at + i) % pending.len()])
                                    .collect()
                            }
                            Order::Random => (0..iters)
                                .map(|_| pending[xorshift(&mut random) as usize % pending.len()])
                                .collect(),
                        };
                        let otp = otp.clone();
                        run_split(threads, ids, move |rt, chunk| {
                            rt.block_on(async {
                                for id in chunk {
                                    let outcome = otp.verify(&id, "000000").await.unwrap();
                                    black_box(outcome);
                                }
                            })
                        })
                    })
                },
            );
        }

        group.bench_function(format!("correct_code/{threads}_threads"), |b| {
            b.iter_custom(|iters| {
                let items = fixture.fresh(&rt, iters);
                let otp = fixture.otp.clone();
                run_split(threads, items, move |rt, chunk| {
                    rt.block_on(async {
                        for (id, code) in chunk {
                            let code = std::str::from_utf8(&code).unwrap();
                            let outcome = otp.verify(&id, code).await.unwrap();
                            assert!(outcome.is_verified());
                        }
                    })
                })
            })
        });
    }
    group.finish();
}

criterion_group!(verify, benches);
criterion_main!(verify);
