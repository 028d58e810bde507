// files through the platform port: paths in Node, URLs in a browser (package.json `imports`)
import { readText, listDir, fileExists, joinPath as join, resolveInside } from '#platform';

export async function readJson<T = Record<string, unknown>>(path: string): Promise<T> {
  let text: string;
  try {
    text = await readText(path);
  } catch (e) {
    throw new Error(`cannot read ${path}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : (e as Error).message}`);
  }
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new Error(`${path} is not valid JSON: ${(e as Error).message}`);
  }
}

/**
 * The weight files of a diffusers/transformers model folder: a single safetensors file, or the shards
 * listed by a `*.safetensors.index.json`. With `variant` (diffusers' `variant="fp16"`), the files
 * named for it: `<stem>.fp16.safetensors` or the shards of `<stem>.safetensors.index.fp16.json`; without,
 * the plain files, else the only variant the folder has. Pickle checkpoints (.bin) are refused with a
 * clear message.
 */
export async function weightFiles(dir: string, variant?: string): Promise<string[]> {
  const listed = await listDir(dir).catch(() => {
    throw new Error(`model folder ${dir} does not exist`);
  });
  // a folder that cannot be listed (a URL): the conventional names the server has
  const names = listed ?? (await probeNames(dir, variant));
  const stems = ['diffusion_pytorch_model', 'model'];
  const pick = (v: string | null): string[] | Promise<string[]> | null => {
    for (const stem of stems) {
      const index = v ? `${stem}.safetensors.index.${v}.json` : `${stem}.safetensors.index.json`;
      if (names.includes(index)) return shardFiles(dir, join(dir, index));
      const single = v ? `${stem}.${v}.safetensors` : `${stem}.safetensors`;
      if (names.includes(single)) return [join(dir, single)];
    }
    return null;
  };
  if (variant) {
    const found = pick(variant);
    if (found) return found;
    throw new Error(`${dir} has no weights of variant '${variant}' (looked for ${stems.map((s) => `${s}.${variant}.safetensors`).join(', ')} and their sharded indexes)`);
  }
  const plainFiles = pick(null);
  if (plainFiles) return plainFiles;
  const index = names.find((n) => n.endsWith('.safetensors.index.json'));
  if (index) return shardFiles(dir, join(dir, index));
  // a folder saved only with a variant (e.g. fp16): that variant, if there is exactly one
  const variants = [...new Set(names.map((n) => /^(?:diffusion_pytorch_model|model)\.safetensors\.index\.([\w-]+)\.json$/.exec(n)?.[1] ?? /^(?:diffusion_pytorch_model|model)\.([\w-]+?)(?:-\d{5}-of-\d{5})?\.safetensors$/.exec(n)?.[1]).filter((v): v is string => !!v))];
  if (variants.length === 1) return pick(variants[0]!) ?? names.filter((n) => n.endsWith('.safetensors')).map((n) => join(dir, n));
  if (variants.length > 1) throw new Error(`${dir} holds weights of several variants (${variants.join(', ')}) and no plain ones: say which (variant option)`);
  const any = names.filter((n) => n.endsWith('.safetensors'));
  if (any.length) return any.map((n) => join(dir, n));
  if (names.some((n) => n.endsWith('.bin') || n.endsWith('.ckpt'))) {
    throw new Error(`${dir} holds only pickle weights (.bin/.ckpt); foliar reads safetensors (convert with diffusers' save_pretrained(safe_serialization=True))`);
  }
  throw new Error(`${dir} has no .safetensors weights`);
}

/** The shards a `*.safetensors.index.json` lists, each resolved inside `dir` (a `../` or absolute name is refused). */
async function shardFiles(dir: string, indexPath: string): Promise<string[]> {
  const j = await readJson<unknown>(indexPath);
  const map = j !== null && typeof j === 'object' && !Array.isArray(j) ? (j as Record<string, unknown>).weight_map : undefined;
  if (map === null || typeof map !== 'object' || Array.isArray(map)) {
    throw new Error(`${indexPath}: "weight_map" must be an object {tensor name: shard file}, got ${map === undefined ? 'nothing' : JSON.stringify(map)}`);
  }
  const shards = new Set<string>();
  for (const [name, file] of Object.entries(map)) {
    if (typeof file !== 'string') throw new Error(`${indexPath}: weight_map["${name}"] must be a file name, got ${JSON.stringify(file)}`);
    shards.add(file);
  }
  if (!shards.size) throw new Error(`${indexPath}: weight_map lists no tensors`);
  return [...shards].map((f) => resolveInside(dir, f, `${indexPath}: shard`));
}

/**
 * Where a folder cannot be listed (HTTP), the weight files diffusers and transformers write, those the
 * server has: the plain or `variant` single file or index of each stem, first found first.
 */
async function probeNames(dir: string, variant?: string): Promise<string[]> {
  const candidates: string[] = [];
  for (const stem of ['diffusion_pytorch_model', 'model']) {
    if (variant) candidates.push(`${stem}.safetensors.index.${variant}.json`, `${stem}.${variant}.safetensors`);
    candidates.push(`${stem}.safetensors.index.json`, `${stem}.safetensors`);
  }
  for (const name of candidates) if (await fileExists(join(dir, name))) return [name];
  return [];
}

/** Whether the file exists (a path in Node, a URL in a browser). */
export async function exists(path: string): Promise<boolean> {
  return fileExists(path);
}
