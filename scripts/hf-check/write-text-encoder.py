# Writes an SD1.5-shaped CLIPTextModel with transformers' own save_pretrained (random weights, 3 shards
# and model.safetensors.index.json, as transformers writes large models) and its outputs for fixed ids,
# to check foliar's loader against a folder foliar did not write (issue 16; no diffusers wheel here).
#   python3 scripts/hf-check/write-text-encoder.py /tmp/hf-te   (needs torch, numpy, transformers)
#   npx tsx --conditions foliar-source scripts/hf-check/check-text-encoder.ts /tmp/hf-te
import json, sys, torch, numpy as np
from transformers import CLIPTextConfig, CLIPTextModel
out = sys.argv[1]
torch.manual_seed(0)
cfg = CLIPTextConfig(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                     max_position_embeddings=77, hidden_act='quick_gelu', layer_norm_eps=1e-5, projection_dim=768,
                     bos_token_id=0, eos_token_id=2, pad_token_id=1)
m = CLIPTextModel(cfg).eval()
m.save_pretrained(out + '/text_encoder', max_shard_size='200MB', safe_serialization=True)
g = torch.Generator().manual_seed(1)
ids = torch.randint(0, 49406, (2, 77), generator=g)
ids[:, 0] = 49406
ids[0, 9] = 49407; ids[0, 10:] = 49407
ids[1, 40] = 49407; ids[1, 41:] = 49407
with torch.no_grad():
    o = m(input_ids=ids)
np.asarray(ids.numpy(), dtype=np.int32).tofile(out + '/ids.i32')
o.last_hidden_state.numpy().astype(np.float32).tofile(out + '/last_hidden_state.f32')
o.pooler_output.numpy().astype(np.float32).tofile(out + '/pooler_output.f32')
print('written', out, o.last_hidden_state.shape, float(o.last_hidden_state.abs().mean()))
