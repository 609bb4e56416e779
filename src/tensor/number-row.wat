;; The fast path of json-reader.ts's `row`: JSON numbers separated by commas, read into float64
;; exactly as the reader's own fast path reads them (its digits as one integer below 2^53, over an
;; exact power of ten), for numbers of at most 18 digits. Everything else is left to the reader.
;;
;; Memory: the powers of ten 1e0..1e22 (float64) at 0, written by the loader; the bytes to read
;; and the numbers read where the caller says. A 0 byte ends the bytes (no JSON text holds one
;; outside a string). The tests of digits and whitespace are written out where they are used:
;; V8 does not inline calls between WebAssembly functions.
(module
  (memory (export "memory") 1)
  ;; numbers written by the last call
  (global $count (export "count") (mut i32) (i32.const 0))
  ;; why the last call returned: 0 at an element at or past `stop`, or with `max` numbers
  ;; written; 1 at an element left to the caller; 2 at an element the 0 byte cut short; 3 after
  ;; an element, at the token that follows it (neither a comma nor whitespace)
  (global $why (export "why") (mut i32) (i32.const 0))

  ;; Reads elements from `p`, each a number then whitespace then a comma then whitespace, into
  ;; float64 at `out`, at most `max`; returns where it stopped (see $why).
  (func (export "row") (param $p i32) (param $stop i32) (param $out i32) (param $max i32) (result i32)
    (local $c i32) (local $neg i32) (local $m i64) (local $digits i32) (local $dot i32)
    (local $scale i32) (local $k i32) (local $c2 i32) (local $start i32) (local $v f64)
    (local.set $k (i32.const 0))
    (block $leave
      (loop $element
        (global.set $why (i32.const 0))
        (br_if $leave (i32.ge_u (local.get $p) (local.get $stop)))
        (br_if $leave (i32.ge_u (local.get $k) (local.get $max)))
        (local.set $start (local.get $p))
        (global.set $why (i32.const 1))
        (local.set $c (i32.load8_u (local.get $p)))
        (local.set $neg (i32.eq (local.get $c) (i32.const 45)))
        (if (local.get $neg) (then
          (local.set $p (i32.add (local.get $p) (i32.const 1)))
          (local.set $c (i32.load8_u (local.get $p)))))
        (local.set $m (i64.const 0))
        (local.set $digits (i32.const 0))
        (local.set $scale (i32.const 0))
        ;; the integer part: 0, or digits not starting with 0
        (if (i32.eq (local.get $c) (i32.const 48))
          (then
            (local.set $p (i32.add (local.get $p) (i32.const 1)))
            (local.set $c (i32.load8_u (local.get $p))))
          (else
            (if (i32.eqz (i32.le_u (i32.sub (local.get $c) (i32.const 48)) (i32.const 9))) (then
              (if (i32.eqz (local.get $c)) (then (global.set $why (i32.const 2))))
              (br $leave)))
            (loop $integer
              (local.set $m (i64.add (i64.mul (local.get $m) (i64.const 10)) (i64.extend_i32_u (i32.sub (local.get $c) (i32.const 48)))))
              (local.set $digits (i32.add (local.get $digits) (i32.const 1)))
              (local.set $p (i32.add (local.get $p) (i32.const 1)))
              (local.set $c (i32.load8_u (local.get $p)))
              (br_if $integer (i32.le_u (i32.sub (local.get $c) (i32.const 48)) (i32.const 9))))))
        ;; the fraction
        (if (i32.eq (local.get $c) (i32.const 46)) (then
          (local.set $p (i32.add (local.get $p) (i32.const 1)))
          (local.set $c (i32.load8_u (local.get $p)))
          (local.set $dot (local.get $p))
          (if (i32.eqz (i32.le_u (i32.sub (local.get $c) (i32.const 48)) (i32.const 9))) (then
            (if (i32.eqz (local.get $c)) (then (global.set $why (i32.const 2))))
            (br $leave)))
          ;; two digits a step where there are two: half as long a chain of dependent multiply-adds
          (loop $fraction
            (local.set $c2 (i32.load8_u (i32.add (local.get $p) (i32.const 1))))
            (if (i32.le_u (i32.sub (local.get $c2) (i32.const 48)) (i32.const 9))
              (then
                (local.set $m (i64.add (i64.mul (local.get $m) (i64.const 100))
                  (i64.extend_i32_u (i32.add (i32.mul (i32.sub (local.get $c) (i32.const 48)) (i32.const 10)) (i32.sub (local.get $c2) (i32.const 48))))))
                (local.set $p (i32.add (local.get $p) (i32.const 2)))
                (local.set $c (i32.load8_u (local.get $p)))
                (br_if $fraction (i32.le_u (i32.sub (local.get $c) (i32.const 48)) (i32.const 9))))
              (else
                (local.set $m (i64.add (i64.mul (local.get $m) (i64.const 10)) (i64.extend_i32_u (i32.sub (local.get $c) (i32.const 48)))))
                (local.set $p (i32.add (local.get $p) (i32.const 1)))
                (local.set $c (local.get $c2)))))
          (local.set $scale (i32.sub (local.get $p) (local.get $dot)))
          (local.set $digits (i32.add (local.get $digits) (local.get $scale)))))
        ;; cut short by the end of the bytes: the caller reads on with more
        (if (i32.eqz (local.get $c)) (then (global.set $why (i32.const 2)) (br $leave)))
        ;; an exponent, over 18 digits (m may have wrapped past 2^64: no matter), or m past 2^53: the caller's
        (br_if $leave (i32.eq (i32.or (local.get $c) (i32.const 32)) (i32.const 101)))
        (br_if $leave (i32.gt_u (local.get $digits) (i32.const 18)))
        (br_if $leave (i64.ge_u (local.get $m) (i64.const 9007199254740992)))
        ;; exact below 2^53, so one rounding, the division's: as the reader's m / EXACT_POW10[scale]
        (local.set $v (f64.convert_i64_u (local.get $m)))
        (if (local.get $scale) (then
          (local.set $v (f64.div (local.get $v) (f64.load (i32.shl (local.get $scale) (i32.const 3)))))))
        (if (local.get $neg) (then (local.set $v (f64.neg (local.get $v)))))
        ;; what follows: whitespace, then a comma (another element) or the token after the row
        (loop $space1
          (if (i32.or (i32.or (i32.eq (local.get $c) (i32.const 32)) (i32.eq (local.get $c) (i32.const 10))) (i32.or (i32.eq (local.get $c) (i32.const 13)) (i32.eq (local.get $c) (i32.const 9)))) (then
            (local.set $p (i32.add (local.get $p) (i32.const 1)))
            (local.set $c (i32.load8_u (local.get $p)))
            (br $space1))))
        (if (i32.eqz (local.get $c)) (then (global.set $why (i32.const 2)) (br $leave)))
        (f64.store (i32.add (local.get $out) (i32.shl (local.get $k) (i32.const 3))) (local.get $v))
        (local.set $k (i32.add (local.get $k) (i32.const 1)))
        (if (i32.ne (local.get $c) (i32.const 44)) (then
          (global.set $why (i32.const 3))
          (global.set $count (local.get $k))
          (return (local.get $p))))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (local.set $c (i32.load8_u (local.get $p)))
        (loop $space2
          (if (i32.or (i32.or (i32.eq (local.get $c) (i32.const 32)) (i32.eq (local.get $c) (i32.const 10))) (i32.or (i32.eq (local.get $c) (i32.const 13)) (i32.eq (local.get $c) (i32.const 9)))) (then
            (local.set $p (i32.add (local.get $p) (i32.const 1)))
            (local.set $c (i32.load8_u (local.get $p)))
            (br $space2))))
        (br $element)))
    ;; stopped at an element's start (why: 0, 1 or 2)
    (global.set $count (local.get $k))
    (select (local.get $p) (local.get $start) (i32.eqz (global.get $why))))
)
