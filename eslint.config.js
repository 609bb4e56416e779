'use strict'
// standard style (no semicolons, space before function parens) for TypeScript, as the code is written
const neostandard = require('neostandard')

module.exports = [
  ...neostandard({ ts: true, ignores: ['dist/**', 'examples/client/losshub.d.ts', 'node_modules/**'] }),
  {
    rules: {
      // `void promise` marks a promise deliberately not awaited
      'no-void': ['error', { allowAsStatement: true }],
      // long messages and descriptions may run on; code wraps
      '@stylistic/max-len': ['error', { code: 180, ignoreStrings: true, ignoreTemplateLiterals: true, ignoreRegExpLiterals: true, ignoreUrls: true, ignoreComments: false }]
    }
  }
]
