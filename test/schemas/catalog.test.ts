import t from 'tap'
import { CATALOG_ENTRY_EXAMPLE } from '../../schemas/catalog'
import { REGISTRY } from '../../src/losses'
import { catalogEntry } from '../../src/routes/loss'

t.test('the catalog\'s example is the entry GET /loss/smooth_l1 answers', async t => {
  const def = REGISTRY.get(CATALOG_ENTRY_EXAMPLE.name)
  t.ok(def, 'the example names a served loss')
  if (def !== undefined) t.same(CATALOG_ENTRY_EXAMPLE, catalogEntry(def))
})
