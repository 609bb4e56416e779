import { type ServerResponse } from 'node:http'

/**
 * How a queued call learns that its caller has gone, so that the batcher drops it: the part of
 * AbortSignal the batcher uses (an AbortSignal is one).
 */
export interface Departure {
  addEventListener: (type: 'abort', listener: () => void, options?: { once?: boolean }) => void
  removeEventListener: (type: 'abort', listener: () => void) => void
}

/**
 * A Departure for one request: `leave()` tells its listener, once. The front doors make one per
 * request; an AbortController cost about 6 µs each there (a CPU profile of small gRPC calls),
 * this costs an object.
 */
export class ClientGone implements Departure {
  private listener?: () => void

  addEventListener (_type: 'abort', listener: () => void): void { this.listener = listener }

  removeEventListener (_type: 'abort', listener: () => void): void {
    if (this.listener === listener) this.listener = undefined
  }

  /** A ClientGone told when `response` closes before it was sent whole (the client hung up). */
  static of (response: ServerResponse): ClientGone {
    const gone = new ClientGone()
    response.once('close', () => { if (!response.writableEnded) gone.leave() })
    return gone
  }

  /** The client has gone: the call is dropped if it is still queued. */
  leave (): void {
    const listener = this.listener
    this.listener = undefined
    listener?.()
  }
}
