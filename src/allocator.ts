import fs from 'node:fs'
import { JEMALLOC_CONF } from './config'

/**
 * Which C allocator the cluster's workers run on. glibc's malloc keeps the memory of freed
 * request buffers: a heap grown by large or concurrent tensors stays grown, its free blocks
 * between live ones (fragmentation), and only a call Node cannot make (`malloc_trim`) would hand
 * them back. jemalloc hands unused pages back on its own, a second after they are freed (a
 * background thread): after the workloads of bench:peer, with the pools of bodies let go when
 * idle (src/http/body-memory.ts), a worker went back to 154 to 195 MiB resident on jemalloc and
 * stayed at 250 to 356 on glibc, with requests a second the same within the machine's noise
 * (bench/README.md). So ALLOCATOR=jemalloc (the default) preloads jemalloc into the workers
 * when it is installed (Debian's `libjemalloc2`; the Docker image has it), unless the operator
 * has chosen a preload of their own.
 */

/*
 * Why JEMALLOC_CONF (src/config.ts), jemalloc's settings when the operator gives none: unused
 * pages back to the system after 1 s, by a background thread. `oversize_threshold:0`: by
 * default allocations of 8 MiB and more go to an arena that hands pages back at once, so each
 * large kernel's intermediates (16 MiB for cross_entropy [4096,1000], ONNX Runtime's own arena
 * being off) were faulted in afresh: p50 36 to 43 ms against 26 to 33 on glibc; with it, 0.97
 * of glibc's requests a second.
 * `lg_extent_max_active_fit:10`: Node's HTTP parser copies each piece of a body (up to 64 KiB)
 * into memory of its own, freed together at the next GC, where jemalloc merges it into extents
 * of many MiB; by default it will not cut an extent more than 64 times the size asked for, so
 * each new piece came from pages faulted in afresh (a bare node:http server receiving 16 MiB
 * bodies: 2,400 to 3,000 page faults a request against 400 to 600, p50 16 to 19 ms against 9
 * to 14; V2 binary [4096,1000] p50 29 against 23 ms). 1,024 times lets a piece reuse them.
 * Left as it is: arena 0, the event loop's, is made before jemalloc reads oversize_threshold,
 * so it still purges any freed extent of 8 MiB or more at once; each 16 MiB gRPC message that
 * grpc-js joins into one buffer lands on fresh pages (4,096 faults). A large message with raw
 * tensors is therefore read into reused memory by the service instead
 * (src/protocols/v2/grpc-collected.ts); the rest still go through grpc-js. Only a decay of `-1`
 * turns the purge off, and then pages are never handed back (dirty) or stay counted as resident
 * (muzzy). `thp:always` (jemalloc asks the kernel for transparent huge pages; the kernel's
 * setting must be `madvise` or `always`) faults such a buffer in as 8 huge pages: bench:v2's
 * gRPC [4096,1000] p50 14.6 and 27.0 ms against 33.8 and 40.9 (two runs of each, 2026-11-28,
 * before the service read such messages itself), but a worker holds
 * some 35 to 47 MiB more 23 s after bench:peer's workloads (215 and 216 MiB against 166 and 169),
 * past the 200 MiB a worker aims at; so it is the operator's choice (MALLOC_CONF), measured in
 * bench/README.md.
 */

/** Where Debian-like systems (and the Docker image's link) put jemalloc's library. */
const ARCH_DIRS: Record<string, string> = { x64: 'x86_64-linux-gnu', arm64: 'aarch64-linux-gnu' }
export function jemallocCandidates (arch: string = process.arch): string[] {
  const dir = ARCH_DIRS[arch]
  return ['/usr/local/lib/libjemalloc.so.2', ...(dir !== undefined ? [`/usr/lib/${dir}/libjemalloc.so.2`] : []), '/usr/lib64/libjemalloc.so.2', '/usr/lib/libjemalloc.so.2']
}

/**
 * The environment a worker needs for `allocator`: for `jemalloc`, jemalloc preloaded (with
 * JEMALLOC_CONF unless MALLOC_CONF is set) when a candidate exists and LD_PRELOAD is unset;
 * otherwise nothing (glibc, with GLIBC_TUNABLES as set). Pure but for `exists`: tests pass their own.
 */
export function workerAllocator (allocator: 'jemalloc' | 'system', env: NodeJS.ProcessEnv, exists: (path: string) => boolean = fs.existsSync): { name: string, env: Record<string, string> } {
  if (allocator === 'system') return { name: 'as started (ALLOCATOR=system)', env: {} }
  if ((env.LD_PRELOAD ?? '') !== '') return { name: `as started (LD_PRELOAD=${env.LD_PRELOAD ?? ''})`, env: {} }
  const lib = jemallocCandidates().find(path => exists(path))
  if (lib === undefined) return { name: 'glibc (no libjemalloc.so.2 installed)', env: {} }
  return { name: `jemalloc (${lib})`, env: { LD_PRELOAD: lib, MALLOC_CONF: env.MALLOC_CONF ?? JEMALLOC_CONF } }
}
