'use strict'
/**
 * Tap's coverage map: whatever a test file runs, only the service's own code, src/, is measured;
 * also as built in dist/src/ (run by the tests that start a real server process), which the
 * report maps back to src/ through its source maps.
 */
module.exports = () => ['src/**/*.ts', 'dist/src/**/*.js']
