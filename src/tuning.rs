//! Process-wide settings under which candle runs fast on a few CPU cores.
//!
//! Two defaults outside this crate cost more than the arithmetic here
//! (measured with `bnn bench` on 2 cores; docs/performance.md):
//!
//! - **glibc's allocator returns big blocks to the system.** Blocks above a
//!   dynamic threshold (at most 32 MiB) are fresh `mmap`s, and a free heap
//!   top beyond twice that threshold is trimmed, so the megabyte-sized
//!   tensors of a batched prediction are page-faulted in, zeroed by the
//!   kernel and unmapped again, pass after pass. A fixed 32 MiB threshold
//!   and a 1 GiB trim threshold let freed blocks be reused: MC dropout
//!   prediction at H = 256 took 1.5 million page faults per 3 calls before,
//!   42 thousand after, and ran 3× faster. Training and prediction run on a
//!   thread of rayon's pool ([`on_compute_pool`]), which glibc would serve
//!   from an arena of its own that ignores the trim threshold; one arena
//!   for all threads keeps the reuse (`bnn bench --hidden 64 --epochs 2`:
//!   189 thousand page faults with a second arena, 36 thousand with one).
//! - **candle has two thread pools.** Matmuls run on rayon's pool, one
//!   thread per core; elementwise ops of 64 Ki values or more on a
//!   spin-waiting barrier pool of its own, again one thread per core. On a
//!   few cores the pools take turns and threads spin on threads that are not
//!   running: BBB training at H = 256 took 5.2 s per epoch, 0.41 s with
//!   elementwise ops on the calling thread (`CANDLE_NUM_THREADS=1`), matmuls
//!   keeping every core.
//!
//! And one that costs a system call per matmul: **candle asks for its
//! matmul thread count on every matmul**, and unless `RAYON_NUM_THREADS` is
//! set it answers by opening and parsing `/proc/cpuinfo` (`num_cpus`'s
//! physical core count). A 50-unit MC-dropout step makes six matmuls, and
//! `strace -c` on 400 Boston epochs counted 9,752 opens of that file. Setting
//! the variable once, to the count candle would have found, keeps the same
//! threads without the file.

/// Applies the settings: the allocator thresholds and one arena (glibc
/// only; elsewhere nothing), `CANDLE_NUM_THREADS=1`, and `RAYON_NUM_THREADS` = candle's own
/// choice of matmul threads (the physical cores), each variable only unless
/// it is already set.
///
/// Call it first in `main`, before any thread is started and any tensor is
/// made: candle reads the variable once, when its pool is first used, and
/// setting a variable while another thread reads the environment is a race.
pub fn tune_process() {
    tune_process_for(1);
}

/// [`tune_process`] for a process that runs `concurrent` independent
/// computations at once, each on a thread of its own (`bnn uci --jobs J`
/// runs J splits): they get an allocator arena each, plus the main
/// thread's. In one arena their allocations queue on its lock: 20 Boston
/// splits of MC dropout (`bnn uci --method mc-dropout`, 2 cores) took 8.1 s
/// with one job, 12.9 s with two jobs in one arena, and 4.5 s with an arena
/// each. `concurrent <= 1` is [`tune_process`].
pub fn tune_process_for(concurrent: usize) {
    keep_freed_memory(if concurrent > 1 { concurrent + 1 } else { 1 });
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let threads = candle_core::utils::get_num_threads();
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    }
}

/// Fixes glibc's `mmap` threshold at 32 MiB and its trim threshold at
/// 1 GiB, and serves all threads from at most `arenas` arenas (1: every
/// thread from one), so that freed tensor buffers are reused (see the
/// module docs). glibc fixes its arena limit when a second thread first
/// allocates, so call it before that. Does nothing off glibc.
pub fn keep_freed_memory(arenas: usize) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters, under the allocator's
    // own lock; all three values are in the ranges glibc accepts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
        libc::mallopt(
            libc::M_ARENA_MAX,
            libc::c_int::try_from(arenas.max(1)).unwrap_or(libc::c_int::MAX),
        );
    }
}

/// Runs `f` on a thread of rayon's global pool, the pool candle's matmuls
/// and this crate's kernels split their work across, and returns its
/// result. [`crate::train::fit`] and [`crate::predictive::predict`] run
/// there.
///
/// Called from outside the pool, each parallel operation hands its work to
/// the pool's threads and parks the caller until they finish: on 2 cores,
/// two threads woken and one put to sleep per matmul. From inside, the
/// caller works on its share and wakes one helper: `bnn bench --hidden 64
/// --epochs 2` made 7,650 context switches before, 351 after, and an MC
/// dropout epoch at H = 256 took a third less time (docs/performance.md).
/// The results are the same bits: every kernel's output is independent of
/// the thread that computes it.
pub fn on_compute_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| f())
}
