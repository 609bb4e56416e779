import t from 'tap'
import { ClientGone } from '../../src/batching/departure'

t.test('ClientGone tells its listener once, and not once it is removed', async t => {
  const g = new ClientGone()
  let told = 0
  const listener = (): void => { told++ }
  g.addEventListener('abort', listener)
  g.leave()
  g.leave()
  t.equal(told, 1)
  g.addEventListener('abort', listener)
  g.removeEventListener('abort', () => {})
  g.removeEventListener('abort', listener)
  g.leave()
  t.equal(told, 1, 'removed: not told')
})
