import { createRequire } from 'node:module';
import type { Ajv as AjvClass, ErrorObject } from 'ajv';

/**
 * Validates a document against the HAR 1.2 JSON schema (the maintained
 * `har-schema` package, draft-06) with ajv. Returns the error list; empty
 * means valid.
 */
const require = createRequire(import.meta.url);
const draft06 = require('ajv/dist/refs/json-schema-draft-06.json') as object;
const schemas = require('har-schema') as Record<string, { $id: string }>;

// ajv and ajv-formats are CommonJS modules with a `default` export.
const Ajv = (require('ajv') as { Ajv: typeof AjvClass }).Ajv;
const addFormats = (require('ajv-formats') as { default: (ajv: AjvClass) => AjvClass }).default;

// strict: false: har-schema carries non-standard keywords ("optional", "min").
const ajv = new Ajv({ allErrors: true, strict: false });
addFormats(ajv);
ajv.addMetaSchema(draft06);
for (const schema of Object.values(schemas)) ajv.addSchema(schema);
const validateHar = ajv.getSchema('har.json#');
if (!validateHar) throw new Error('har-schema: har.json# not found');

export function harSchemaErrors(document: unknown): string[] {
  if (validateHar?.(document)) return [];
  return (validateHar?.errors ?? []).map((e: ErrorObject) => `${e.instancePath || '/'} ${e.message ?? ''}`);
}
