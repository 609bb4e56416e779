/**
 * Decimal ⇄ binary arithmetic shared by the JSON reader and writer: powers of ten exact to
 * about 2^-110 as double-doubles, and the conversion of a decimal of up to 19 digits to the
 * double nearest to it. Every function here either answers exactly what `Number(text)` would
 * or says it cannot decide (near a rounding tie, or out of its range), and the caller then
 * asks V8 itself: the fast path never trades exactness for speed.
 */

/** 10^i for i in [0, 22]: every one is a double exactly. */
export const EXACT_POW10 = Float64Array.from({ length: 23 }, (_, i) => Number(`1e${i}`))

/** Smallest decimal exponent with a double-double power of ten (values stay far from underflow). */
export const MIN_POW10 = -280
/** Largest decimal exponent with a double-double power of ten (values stay far from overflow). */
export const MAX_POW10 = 280

const COUNT = MAX_POW10 - MIN_POW10 + 1
/** 10^e ≈ POW10_HI + POW10_LO, with the high part split (Dekker) into POW10_A + POW10_B. */
const POW10_HI = new Float64Array(COUNT)
const POW10_LO = new Float64Array(COUNT)
const POW10_A = new Float64Array(COUNT)
const POW10_B = new Float64Array(COUNT)

/** 2^27 + 1: Dekker's splitter for doubles. */
const SPLITTER = 134217729

for (let e = MIN_POW10; e <= MAX_POW10; e++) {
  let hi: number
  let lo: number
  if (e >= 0) {
    const exact = 10n ** BigInt(e)
    hi = Number(exact)
    lo = Number(exact - BigInt(hi))
  } else {
    // 2^s / 10^k truncated to about 120 significant bits, then scaled back in two steps
    // (one step of 2^-s would underflow)
    const k = -e
    const s = Math.ceil(k * Math.log2(10)) + 120
    const q = (1n << BigInt(s)) / 10n ** BigInt(k)
    const qHi = Number(q)
    const qLo = Number(q - BigInt(qHi))
    const half = s >> 1
    hi = qHi * 2 ** -half * 2 ** -(s - half)
    lo = qLo * 2 ** -half * 2 ** -(s - half)
  }
  const i = e - MIN_POW10
  const c = SPLITTER * hi
  POW10_HI[i] = hi
  POW10_LO[i] = lo
  POW10_A[i] = c - (c - hi)
  POW10_B[i] = hi - POW10_A[i]
}

/** Shared results of `scaleByPow10` (no allocation per call). */
export const scaled = { hi: 0, lo: 0 }

/**
 * m × 10^e as a double-double (`scaled.hi + scaled.lo`, relative error below 2^-100), for
 * 0 <= m < 2^64 and e in [MIN_POW10, MAX_POW10]. `mLo` extends m beyond a double
 * (m = mHi + mLo exactly).
 */
export function scaleByPow10 (mHi: number, mLo: number, e: number): void {
  const i = e - MIN_POW10
  const ph = POW10_HI[i]
  const x = mHi * ph
  // Dekker's exact product error of mHi × ph, with ph split in advance
  const c = SPLITTER * mHi
  const a = c - (c - mHi)
  const b = mHi - a
  const err = ((a * POW10_A[i] - x) + a * POW10_B[i] + b * POW10_A[i]) + b * POW10_B[i]
  scaled.hi = x
  scaled.lo = err + (mHi * POW10_LO[i] + mLo * ph)
}

/** 2^-80: far above the error of `scaleByPow10` and far below half an ulp. */
const MARGIN = 2 ** -80

/**
 * The double nearest to the decimal M × 10^e where M = hi × 10^loDigits + lo (hi < 2^53,
 * loDigits <= 4, lo < 10^loDigits), as `Number` reads it; -1 when undecided (e out of range,
 * or the value within 2^-28 ulp of a rounding tie). M is at most 19 digits.
 */
export function decimalToDouble (hi: number, loDigits: number, lo: number, e: number): number {
  if (e < MIN_POW10 || e > MAX_POW10) return -1
  // M exactly as mHi + mLo: hi × 10^loDigits with its Dekker error, plus lo
  const p = EXACT_POW10[loDigits]
  const ph = hi * p
  const c = SPLITTER * hi
  const a = c - (c - hi)
  const b = hi - a
  const pe = ((a * p - ph) + b * p) // p < 2^27 needs no split of its own: a × p and b × p are exact
  const s0 = ph + lo
  const t0 = (lo - (s0 - ph)) + pe // both small integers: the sum is exact
  const mHi = s0 + t0
  const mLo = t0 - (mHi - s0)
  scaleByPow10(mHi, mLo, e)
  const x = scaled.hi
  const r = scaled.lo
  const s = x + r
  // how far the exact value lies from s: decided only when s is the nearest double to every
  // value within the margin of it
  const d = (x - s) + r
  const m = s * MARGIN
  if (s + (d + m) !== s || s + (d - m) !== s) return -1
  return s
}
