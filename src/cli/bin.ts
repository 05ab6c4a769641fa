#!/usr/bin/env node
import { asksForJson } from './args.js';
import { errorDocument, thrownError } from './error-output.js';
import { main } from './main.js';

const argv = process.argv.slice(2);
main(argv).then(
  (code) => {
    process.exitCode = code;
  },
  // main reports the errors of its commands itself; this is for one that escaped it.
  (error: unknown) => {
    const failure = thrownError(error);
    if (asksForJson(argv)) process.stdout.write(`${errorDocument(failure)}\n`);
    else process.stderr.write(`error: ${failure.message}\n`);
    process.exitCode = 1;
  },
);
