import { type ServerResponse } from 'node:http'
import { type FastifyBaseLogger, type FastifyReply, type FastifyRequest } from 'fastify'

/** A reply that has made no progress for this long may be cut to keep replies within their budget. */
export const STALLED_REPLY_MS = 1000

/**
 * Replies sent and not yet taken by their clients, and the bytes Node holds for them (what the
 * socket has not accepted): a client that does not read keeps its reply in this process.
 */
class WaitingReplies {
  private readonly entries = new Map<ServerResponse, { held: number, progressAt: number, log: FastifyBaseLogger }>()

  /** `log`: the reply's own request's logger, for its cut. */
  add (res: ServerResponse, log: FastifyBaseLogger): void { this.entries.set(res, { held: held(res), progressAt: Date.now(), log }) }
  remove (res: ServerResponse): void { this.entries.delete(res) }

  /** Bytes held for waiting replies now; notes which of them moved since last asked. */
  bytes (now: number): number {
    let total = 0
    for (const [res, e] of this.entries) {
      const h = held(res)
      if (h < e.held) e.progressAt = now
      e.held = h
      total += h
    }
    return total
  }

  /** The replies that made no progress for STALLED_REPLY_MS, most bytes first. */
  stalled (now: number): Array<[ServerResponse, number, FastifyBaseLogger]> {
    return [...this.entries]
      .filter(([, e]) => now - e.progressAt >= STALLED_REPLY_MS && e.held > 0)
      .map(([res, e]): [ServerResponse, number, FastifyBaseLogger] => [res, e.held, e.log])
      .sort((a, b) => b[1] - a[1])
  }
}

/** What Node holds for a reply: in its socket, or in the reply itself while an earlier one on the connection (pipelined) has the socket. */
function held (res: ServerResponse): number { return res.writableLength }

/**
 * A reply its client does not read stays in this process: Node keeps what the socket cannot
 * take. 16 connections that sent 22 KB requests for 30 MB replies and never read held 1 GiB,
 * for as long as they stayed open. So:
 * - a reply must be handed to the OS within `ms` of being sent (RECEIVE_TIMEOUT_MS, the bound a
 *   gRPC answer has to be taken by its client); past it, its connection is closed and the
 *   memory goes (30 s takes a 64 MB reply at 18 Mbit/s);
 * - the bytes held for replies stay within `budget` (QUEUE_MAX_MB): when a new reply finds them
 *   past it, the replies that made no progress for STALLED_REPLY_MS have their connections
 *   closed, the largest first, until they fit. Clients that read are never cut for others.
 * A Fastify `onSend` hook.
 */
export function sendDeadline (ms: number, budget = Infinity) {
  const waiting = new WaitingReplies()
  return async function onSend (request: FastifyRequest, reply: FastifyReply, payload: unknown): Promise<unknown> {
    const res = reply.raw
    const timer = setTimeout(() => {
      if (res.writableFinished || res.destroyed) return
      request.log.warn({ code: 'SEND_TIMEOUT', pendingBytes: held(res) }, `reply not taken by the client within ${ms} ms: connection closed`)
      res.destroy()
    }, ms)
    timer.unref()
    waiting.add(res, request.log)
    const done = (): void => {
      clearTimeout(timer)
      waiting.remove(res)
    }
    res.once('finish', done)
    res.once('close', done)
    const now = Date.now()
    let total = waiting.bytes(now)
    if (total > budget) {
      for (const [stalled, bytes, log] of waiting.stalled(now)) {
        log.warn({ code: 'SEND_TIMEOUT', pendingBytes: bytes }, `a reply not taken by its client for ${STALLED_REPLY_MS} ms, with ${total} bytes held for replies (QUEUE_MAX_MB): its connection closed`)
        stalled.destroy()
        total -= bytes
        if (total <= budget) break
      }
    }
    return payload
  }
}
