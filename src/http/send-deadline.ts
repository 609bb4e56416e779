import { type FastifyReply, type FastifyRequest } from 'fastify'

/**
 * A reply its client does not read stays in this process: Node keeps what the socket cannot
 * take. 16 connections that sent 22 KB requests for 30 MB replies and never read held 1 GiB,
 * for as long as they stayed open. So a reply must be handed to the OS within `ms` of being
 * sent (RECEIVE_TIMEOUT_MS, the same bound a gRPC answer has to be taken by its client); past
 * it, its connection is closed and the memory goes. 30 s takes a 64 MB reply at 18 Mbit/s.
 */
export function sendDeadline (ms: number) {
  return async function onSend (request: FastifyRequest, reply: FastifyReply, payload: unknown): Promise<unknown> {
    const res = reply.raw
    const timer = setTimeout(() => {
      if (res.writableFinished || res.destroyed) return
      request.log.warn({ code: 'SEND_TIMEOUT', pendingBytes: res.socket?.writableLength }, `reply not taken by the client within ${ms} ms: connection closed`)
      res.destroy()
    }, ms)
    timer.unref()
    const done = (): void => { clearTimeout(timer) }
    res.once('finish', done)
    res.once('close', done)
    return payload
  }
}
