;; The capabilities benchmark's native capsule: the same keyvalue loops as bench/capsules/ops
;; (a JS capsule), written as a core module, so that what a get or set costs through the
;; capability is measured without StarlingMonkey's bindings in the way.
;;
;; GET /kv/set?n=N   N sets of keys key:0 .. key:999 (64-byte values)
;; GET /kv/get?n=N   N gets of the keys /kv/set wrote
;; Any failure (and a get that finds nothing) traps: the host answers 500 and the benchmark stops with it.
(module
  (import "cm32p2|stratum:keyvalue/store@0.1" "open" (func $open (param i32 i32 i32)))
  (import "cm32p2|stratum:keyvalue/store@0.1" "[method]bucket.get" (func $get (param i32 i32 i32 i32)))
  (import "cm32p2|stratum:keyvalue/store@0.1" "[method]bucket.set" (func $set (param i32 i32 i32 i32 i32 i32)))
  (import "cm32p2|stratum:keyvalue/store@0.1" "bucket_drop" (func $bucket_drop (param i32)))
  (import "cm32p2|wasi:http/types@0.2" "[method]incoming-request.path-with-query" (func $path_with_query (param i32 i32)))
  (import "cm32p2|wasi:http/types@0.2" "[constructor]fields" (func $fields_new (result i32)))
  (import "cm32p2|wasi:http/types@0.2" "[constructor]outgoing-response" (func $response_new (param i32) (result i32)))
  (import "cm32p2|wasi:http/types@0.2" "[method]outgoing-response.body" (func $response_body (param i32 i32)))
  (import "cm32p2|wasi:http/types@0.2" "[method]outgoing-body.write" (func $body_write (param i32 i32)))
  (import "cm32p2|wasi:http/types@0.2" "[static]outgoing-body.finish" (func $body_finish (param i32 i32 i32 i32)))
  (import "cm32p2|wasi:http/types@0.2" "[static]response-outparam.set"
    (func $outparam_set (param i32 i32 i32 i32 i64 i32 i32 i32 i32)))
  (import "cm32p2|wasi:http/types@0.2" "incoming-request_drop" (func $request_drop (param i32)))
  (import "cm32p2|wasi:io/streams@0.2" "[method]output-stream.blocking-write-and-flush"
    (func $write (param i32 i32 i32 i32)))
  (import "cm32p2|wasi:io/streams@0.2" "output-stream_drop" (func $stream_drop (param i32)))

  (memory (export "cm32p2_memory") 1)
  ;; Reset at each request: nothing the host hands over outlives the request that asked for it.
  (global $heap (mut i32) (i32.const 8192))
  ;; 0..63: return areas; 1024: the answer; 2048: the key being built; 2112: the value; 2200: the label.
  (data (i32.const 1024) "ok\n")
  (data (i32.const 2048) "key:")
  (data (i32.const 2112) "vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv")
  (data (i32.const 2200) "default")

  (func (export "cm32p2_realloc") (param $old i32) (param $old_size i32) (param $align i32) (param $size i32) (result i32)
    (local $at i32)
    (local.set $at (i32.and (i32.add (global.get $heap) (i32.sub (local.get $align) (i32.const 1)))
                            (i32.sub (i32.const 0) (local.get $align))))
    (global.set $heap (i32.add (local.get $at) (local.get $size)))
    (if (i32.gt_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536)))
      (then (drop (memory.grow (i32.add (i32.const 1) (i32.shr_u (local.get $size) (i32.const 16)))))))
    (local.get $at))

  (func (export "cm32p2_initialize"))

  ;; Writes key:<n> at 2048; returns its length.
  (func $key (param $n i32) (result i32)
    (local $len i32) (local $i i32) (local $tmp i32)
    (local.set $tmp (local.get $n))
    (loop $count
      (local.set $len (i32.add (local.get $len) (i32.const 1)))
      (local.set $tmp (i32.div_u (local.get $tmp) (i32.const 10)))
      (br_if $count (local.get $tmp)))
    (local.set $i (local.get $len))
    (loop $digits
      (local.set $i (i32.sub (local.get $i) (i32.const 1)))
      (i32.store8 (i32.add (i32.const 2052) (local.get $i))
                  (i32.add (i32.const 48) (i32.rem_u (local.get $n) (i32.const 10))))
      (local.set $n (i32.div_u (local.get $n) (i32.const 10)))
      (br_if $digits (local.get $i)))
    (i32.add (i32.const 4) (local.get $len)))

  (func (export "cm32p2|wasi:http/incoming-handler@0.2|handle") (param $request i32) (param $outparam i32)
    (local $path i32) (local $length i32) (local $at i32) (local $char i32) (local $op i32) (local $n i32)
    (local $i i32) (local $bucket i32) (local $keyLength i32)
    (local $response i32) (local $body i32) (local $stream i32)
    (global.set $heap (i32.const 8192))
    ;; option<string> at 0: tag, pointer, length.
    (call $path_with_query (local.get $request) (i32.const 0))
    (if (i32.load8_u (i32.const 0))
      (then
        (local.set $path (i32.load (i32.const 4)))
        (local.set $length (i32.load (i32.const 8)))))
    (call $request_drop (local.get $request))
    ;; The operation is the path's fifth byte: /kv/get or /kv/set.
    (if (i32.gt_u (local.get $length) (i32.const 4))
      (then (local.set $op (i32.load8_u (i32.add (local.get $path) (i32.const 4))))))
    ;; n: the digits after the first '='.
    (local.set $at (i32.const -1))
    (block $done
      (loop $scan
        (local.set $at (i32.add (local.get $at) (i32.const 1)))
        (br_if $done (i32.ge_u (local.get $at) (local.get $length)))
        (br_if $scan (i32.ne (i32.load8_u (i32.add (local.get $path) (local.get $at))) (i32.const 61)))))
    (block $end
      (loop $digit
        (local.set $at (i32.add (local.get $at) (i32.const 1)))
        (br_if $end (i32.ge_u (local.get $at) (local.get $length)))
        (local.set $char (i32.sub (i32.load8_u (i32.add (local.get $path) (local.get $at))) (i32.const 48)))
        (br_if $end (i32.gt_u (local.get $char) (i32.const 9)))
        (local.set $n (i32.add (i32.mul (local.get $n) (i32.const 10)) (local.get $char)))
        (br $digit)))
    ;; result<bucket, error> at 16: tag, then the handle.
    (call $open (i32.const 2200) (i32.const 7) (i32.const 16))
    (if (i32.load8_u (i32.const 16)) (then unreachable))
    (local.set $bucket (i32.load (i32.const 20)))
    (block $finished
      (loop $next
        (br_if $finished (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $keyLength (call $key (i32.rem_u (local.get $i) (i32.const 1000))))
        ;; 'g' (103): get; anything else: set. Either answer lands at 32, tag first.
        (if (i32.eq (local.get $op) (i32.const 103))
          (then (call $get (local.get $bucket) (i32.const 2048) (local.get $keyLength) (i32.const 32)))
          (else (call $set (local.get $bucket) (i32.const 2048) (local.get $keyLength) (i32.const 2112) (i32.const 64) (i32.const 32))))
        (if (i32.load8_u (i32.const 32)) (then unreachable))
        ;; A get must find what /kv/set wrote: a miss is cheaper and would flatter the figure.
        (if (i32.and (i32.eq (local.get $op) (i32.const 103)) (i32.eqz (i32.load8_u (i32.const 36))))
          (then unreachable))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (call $bucket_drop (local.get $bucket))
    (local.set $response (call $response_new (call $fields_new)))
    (call $response_body (local.get $response) (i32.const 0))
    (local.set $body (i32.load (i32.const 4)))
    (call $body_write (local.get $body) (i32.const 0))
    (local.set $stream (i32.load (i32.const 4)))
    (call $outparam_set (local.get $outparam) (i32.const 0) (local.get $response)
      (i32.const 0) (i64.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0))
    (call $write (local.get $stream) (i32.const 1024) (i32.const 3) (i32.const 48))
    (call $stream_drop (local.get $stream))
    (call $body_finish (local.get $body) (i32.const 0) (i32.const 0) (i32.const 48)))
)
