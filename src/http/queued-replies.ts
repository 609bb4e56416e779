import { type IncomingMessage, type ServerResponse } from 'node:http'
import { type Socket } from 'node:net'

/** A socket of Node's HTTP server, with the reply that has it now (Node's own field). */
export type ServerSocket = Socket & { _httpMessage?: ServerResponse | null }

/** Replies waiting behind another on their connection (pipelined), by connection. */
const queuedOn = new WeakMap<Socket, Set<ServerResponse>>()

/**
 * Node's 'request' listener. A reply queued behind another on its connection (pipelined) gets
 * no 'close' from Node when the connection closes first (after a fault answered with
 * `Connection: close`, or the client going away): Node closes only the reply that has the
 * socket. What waits for a reply's close would wait for good: a large body's turn
 * (BODIES_IN_PROGRESS_MB, so that large requests were refused or left waiting until a restart),
 * the requests in progress that draining waits for, the reply budget's entries. So when such a
 * connection closes, its queued replies are closed as Node closes the one that has the socket.
 */
export function closeQueuedReplies (request: IncomingMessage, reply: ServerResponse): void {
  const socket = request.socket as ServerSocket
  const head = socket._httpMessage
  if (head == null || head === reply) return
  let queued = queuedOn.get(socket)
  if (queued === undefined) {
    const replies = new Set<ServerResponse>()
    queuedOn.set(socket, replies)
    socket.once('close', () => { for (const r of replies) closeReply(r) })
    queued = replies
  }
  const own = queued
  own.add(reply)
  reply.once('close', () => own.delete(reply))
}

/** What Node does for the reply that has the socket when the socket closes (`_closed` marks one closed). */
function closeReply (reply: ServerResponse): void {
  const r = reply as ServerResponse & { _closed?: boolean }
  if (r._closed === true) return
  r.destroyed = true
  r._closed = true
  r.emit('close')
}
