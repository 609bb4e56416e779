import { type IncomingMessage, type ServerResponse } from 'node:http'

/** Whether a request asks to change protocols as HTTP/1.1's parser sees it: an `Upgrade` header, named in `Connection`. */
function asksUpgrade (request: IncomingMessage): boolean {
  const connection = request.headers.connection
  return request.headers.upgrade !== undefined && connection !== undefined && /(^|[\s,])upgrade($|[\s,])/i.test(connection)
}

/**
 * Node's 'request' listener. A request asking to change protocols (curl's `--http2` on an
 * http:// URL asks for h2c) is answered in HTTP/1.1, since nothing here takes a connection
 * over; but Node's parser stops reading at the end of such a request, and drops the bytes of any
 * request sent after it in the same packet: their client would wait for answers that never
 * come. So the connection closes after this answer (`Connection: close`), which tells the client
 * to send those again on a new one.
 */
export function closeAfterUpgradeRequest (request: IncomingMessage, reply: ServerResponse): void {
  if (asksUpgrade(request)) reply.shouldKeepAlive = false
}
