import net from 'node:net'

/**
 * Sends `bytes` on a fresh connection to 127.0.0.1:`port` and resolves with everything the
 * server wrote before the connection closed. Unless `open`, the client ends its side after
 * sending (half-close); open, it sends only (the server may take an end as the client going away).
 */
export async function rawExchange (port: number, bytes: string, open = false): Promise<string> {
  return await new Promise<string>((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => open ? socket.write(bytes) : socket.end(bytes))
    let got = ''
    socket.on('data', (c: Buffer) => { got += c.toString('latin1') })
    socket.on('close', () => resolve(got))
    socket.on('error', reject)
  })
}
