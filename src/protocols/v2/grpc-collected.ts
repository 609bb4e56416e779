/**
 * Large ModelInfer messages read into reused memory by the service, not by grpc-js. grpc-js joins each
 * message into a fresh buffer of its size: a [4096,1000] float32 tensor's 16 MiB then lands on
 * 4,096 newly faulted pages (the event loop's jemalloc arena hands an extent that large back to
 * the system as soon as it is freed: src/allocator.ts), and receiving one took a bare grpc-js
 * server 22 to 24 ms, against 8.3 to 8.6 for node:http2 copying into reused memory (scratch
 * runs on this machine, under the service's jemalloc settings).
 *
 * Here a large message whose first raw_input_contents start within its first HEADER_SCAN_BYTES
 * is copied, once its turn among large bodies has come, as it arrives into shared memory of the
 * body pool (src/http/body-memory.ts), placed so that those contents start `TENSOR_ALIGN`-aligned,
 * and grpc-js's 'data' listeners are given a small stand-in message in its place: a random token,
 * which the request decoder exchanges for the message (`claimStandIn`). A kernel worker reads the
 * tensors from there (copying them out for ONNX Runtime), as it reads a V2 REST binary body. The memory goes back to the pool once its stream is done (answered or closed)
 * and the call that lent it has finished with it. Any other message goes to grpc-js as before.
 */
import { randomUUID } from 'node:crypto'
import type http2 from 'node:http2'
import { giveKeptMemory, SMALLEST_KEPT_BODY, takeSharedMemory } from '../../http/body-memory'
import { copyBytes } from '../../tensor/copy-bytes'
import { alignedUp } from '../../tensor/tensor'
import { rawContentsStart } from './grpc-contents'
import { PREFIX_BYTES } from './grpc-faults'

/** How far into a message its first raw_input_contents are looked for: past the names, shapes and parameters before them. */
export const HEADER_SCAN_BYTES = 64 * 2 ** 10

/** A stand-in's first bytes: a tag of field 0 and wire type 7, which no protobuf decoder reads (a client that sends them gets INVALID_ARGUMENT), then a name. */
const STAND_IN_MARK = Buffer.from('\x07losshub', 'latin1')

/** A stand-in message's length: the mark and a token (a UUID's 36 characters). */
const STAND_IN_BYTES = STAND_IN_MARK.length + 36

/** Messages read whole, by their stand-in's token, until the request decoder claims them. */
const waiting = new Map<string, CollectedMessage>()

/** A message in shared memory, lent to those who hold it; back to the pool when the last lets go. */
export class CollectedMessage {
  /** The message's bytes (its prefix left out). */
  readonly bytes: Buffer
  readonly token = randomUUID()
  private holders = 0
  private gone = false

  constructor (private readonly memory: SharedArrayBuffer, lead: number, size: number) {
    this.bytes = Buffer.from(memory, lead, size)
  }

  /** One more holder: its release (once), or undefined when the memory has gone back already. */
  hold (): (() => void) | undefined {
    if (this.gone) return undefined
    this.holders++
    let held = true
    return () => {
      if (!held) return
      held = false
      if (--this.holders > 0) return
      this.gone = true
      waiting.delete(this.token)
      giveKeptMemory(this.memory)
    }
  }

  /** The stand-in that grpc-js is given, framed: a message that `claimStandIn` exchanges for this one. */
  standIn (): Buffer {
    waiting.set(this.token, this)
    const framed = Buffer.allocUnsafe(PREFIX_BYTES + STAND_IN_BYTES)
    framed[0] = 0
    framed.writeUInt32BE(STAND_IN_BYTES, 1)
    STAND_IN_MARK.copy(framed, PREFIX_BYTES)
    framed.write(this.token, PREFIX_BYTES + STAND_IN_MARK.length, 'latin1')
    return framed
  }
}

/** The message a stand-in stands for, taken out of waiting (once); undefined for any other bytes. */
export function claimStandIn (bytes: Buffer): CollectedMessage | undefined {
  if (bytes.length !== STAND_IN_BYTES || !bytes.subarray(0, STAND_IN_MARK.length).equals(STAND_IN_MARK)) return undefined
  const token = bytes.toString('latin1', STAND_IN_MARK.length)
  const message = waiting.get(token)
  waiting.delete(token)
  return message
}

/** Messages claimed, by the request decoded from them. */
const claimed = new WeakMap<object, CollectedMessage>()

/** Marks `request` as decoded from `message`: its raw contents are views into the message's memory. */
export function decodedFrom (request: object, message: CollectedMessage): void { claimed.set(request, message) }

/** The message `request` was decoded from, when it was collected. */
export function collectedOf (request: object): CollectedMessage | undefined { return claimed.get(request) }

type DataListener = (chunk: Buffer) => void

/**
 * Stands between a ModelInfer stream and grpc-js's 'data' listeners, taken off the stream
 * (`of`). Chunks wait (`chunk`) until the message's prefix and header tell whether it is
 * collected; if not, grpc-js is given them, and every later one, as they came (`pass`).
 */
export class MessageDiverter {
  /** The stream's chunks from its first, until it is decided whether the message is collected. */
  private held: Buffer[] | undefined = []
  /** The stream's bytes so far (while chunks are held, theirs). */
  private at = 0
  private collected?: { message: CollectedMessage, release: () => void, written: number }
  /** Set once the stream is done: what it still delivers (the bytes dropped after an answer) goes nowhere. */
  private done = false

  private constructor (private readonly stream: http2.ServerHttp2Stream, private readonly listeners: DataListener[]) {}

  /** grpc-js's 'data' listeners on `stream`, taken off it into a diverter; undefined when it has none (a stream grpc-js answered itself). */
  static of (stream: http2.ServerHttp2Stream): MessageDiverter | undefined {
    const listeners = stream.listeners('data') as DataListener[]
    if (listeners.length === 0) return undefined
    for (const l of listeners) stream.removeListener('data', l)
    return new MessageDiverter(stream, listeners)
  }

  /**
   * The stream's next chunk. `message`: the message's bytes, prefix included, once the prefix is
   * in (else Infinity); `collect`: whether the message may be collected (uncompressed, within the
   * limit, its stream not answered): `later` while it waits for its turn among large bodies (its
   * chunks so far are held, and memory is taken only once it may be read).
   */
  chunk (chunk: Buffer, message: number, collect: 'no' | 'later' | 'yes'): void {
    if (this.done) return
    const at = this.at
    this.at += chunk.length
    if (this.held === undefined) {
      if (this.collected === undefined) this.give(chunk)
      else this.copy(chunk, at, message)
      return
    }
    this.held.push(chunk)
    if (message === Infinity || collect === 'later') return
    if (collect === 'no' || message - PREFIX_BYTES < SMALLEST_KEPT_BODY) return this.pass()
    const head = this.held.length === 1 ? chunk : Buffer.concat(this.held)
    const start = rawContentsStart(head.subarray(PREFIX_BYTES, Math.min(head.length, message)))
    // the header's end may come in a later chunk
    if (start === 'more' && this.at < Math.min(message, PREFIX_BYTES + HEADER_SCAN_BYTES)) return
    if (typeof start !== 'number' || start > HEADER_SCAN_BYTES) return this.pass()
    const size = message - PREFIX_BYTES
    const lead = alignedUp(start) - start
    const memory = takeSharedMemory(lead + size)
    if (memory === undefined) return this.pass()
    const collected = new CollectedMessage(memory, lead, size)
    this.collected = { message: collected, release: collected.hold() as () => void, written: 0 }
    this.held = undefined
    this.copy(head, 0, message)
  }

  /**
   * Once the stream is done (answered, or closed): gives the message's memory back, unless a call
   * holds it still. Nothing more is copied into it (a stream answered early still delivers the
   * bytes it had buffered, and the memory may be another request's by then).
   */
  release (): void {
    this.done = true
    this.held = undefined
    this.collected?.release()
    this.collected = undefined
  }

  /** grpc-js is given the chunks held, and every later one. */
  private pass (): void {
    const held = this.held ?? []
    this.held = undefined
    for (const c of held) this.give(c)
  }

  private give (chunk: Buffer): void {
    for (const l of this.listeners) l.call(this.stream, chunk)
  }

  /** Copies the part of `chunk` (stream bytes from `at`) that lies in the message; once it is whole, grpc-js is given its stand-in. */
  private copy (chunk: Buffer, at: number, message: number): void {
    const c = this.collected
    if (c === undefined || c.written === c.message.bytes.length) return
    // the prefix is not the message's; bytes past it are a second message (refused by watchMessage)
    const from = Math.max(0, PREFIX_BYTES - at)
    const to = Math.min(chunk.length, message - at)
    if (to <= from) return
    copyBytes(chunk.subarray(from, to), c.message.bytes, at + from - PREFIX_BYTES)
    c.written += to - from
    if (c.written === c.message.bytes.length) this.give(c.message.standIn())
  }
}
