/**
 * An error body in the protocol's form: the API's `{statusCode, code, error, message}` (as the
 * app's error handler writes it) becomes `{"error": "<code>: <message>", "code": "<code>"}`.
 * Anything else passes unchanged.
 */
export function v2ErrorPayload (payload: string): string {
  let body: unknown
  try {
    body = JSON.parse(payload)
  } catch {
    return payload
  }
  const { code, message } = (typeof body === 'object' && body !== null ? body : {}) as { code?: unknown, message?: unknown }
  if (typeof code !== 'string' || typeof message !== 'string') return payload
  return JSON.stringify({ error: `${code}: ${message}`, code })
}
