import t from 'tap'
import { OLD_SPACE_FLOOR, hasOldSpaceFloor, workerExecArgv } from '../src/heap'

t.test('the floor is found however V8 spells the flag, and only a whole flag with a value', async t => {
  t.ok(hasOldSpaceFloor([OLD_SPACE_FLOOR]))
  t.ok(hasOldSpaceFloor(['--inspect', '--initial_old_space_size=128']), 'V8 reads underscores as dashes')
  t.notOk(hasOldSpaceFloor([]))
  t.notOk(hasOldSpaceFloor(['--max-old-space-size=4096']), 'a ceiling is not a floor')
  t.notOk(hasOldSpaceFloor(['--initial-old-space-size']), 'no value')
})

t.test('workers get the primary\'s flags, and the floor unless those set one', async t => {
  t.same(workerExecArgv(['--inspect']), ['--inspect', OLD_SPACE_FLOOR])
  t.same(workerExecArgv([OLD_SPACE_FLOOR]), [OLD_SPACE_FLOOR], 'not twice')
  t.same(workerExecArgv(['--initial-old-space-size=256']), ['--initial-old-space-size=256'], 'the operator\'s own value stands')
})
