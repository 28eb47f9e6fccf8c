"""Sampling throughput: rlhfkit's KV-cache sampler vs `transformers`' `generate`, side by side.

    .venv/bin/python bench/sampler_vs_generate.py [--model runs/quickstart/sft] [--batch 64] [--new 64] [--repeats 3]
    .venv/bin/python bench/sampler_vs_generate.py --layers 12 --hidden 768   # a larger random Llama

Both sides get the same model, the same left-padded prompt batch (held-out prompts of the built-in
task), temperature 1, no top-k/top-p, the same max new tokens, fp32 on CPU (bf16 on a GPU that has
it). Measured: generated tokens per second (real tokens up to and including EOS), best of
--repeats after one warm-up call each. rlhfkit's sampler also returns each token's log-prob, which
`generate` does not (asking it for scores would cost it more). With a random-weight model
(no --model), responses run to the limit; with a trained one they stop at EOS, and both sides stop
when every row is done.

Leaves out: beam search and the many `generate` options the sampler does not have.
"""

from __future__ import annotations

import argparse
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="checkpoint folder (default: the untrained tiny model)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--new", type=int, default=64, help="max new tokens")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--layers", type=int, help="with no --model: this many layers instead of the tiny model's 4")
    parser.add_argument("--hidden", type=int, help="with no --model: this hidden size (heads of 64, MLP 8/3 wide)")
    args = parser.parse_args()

    from rlhfkit.models.loading import build_tiny, load_causal_lm, resolve_dtype
    from rlhfkit.models.sampler import SamplingParams, sample
    from rlhfkit.tasks import assistant

    model, tokenizer = load_causal_lm(args.model) if args.model else build_tiny()
    if not args.model and (args.layers or args.hidden):  # a larger random Llama, same tokenizer
        from transformers import LlamaForCausalLM

        config = model.config
        config.num_hidden_layers = args.layers or config.num_hidden_layers
        if args.hidden:
            config.hidden_size, config.intermediate_size = args.hidden, 64 * round(args.hidden * 8 / 3 / 64)
            config.num_attention_heads = config.num_key_value_heads = args.hidden // 64
            config.head_dim = 64
        torch.manual_seed(0)
        model = LlamaForCausalLM(config)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device=device, dtype=resolve_dtype("auto", device)).eval()
    prompts = [r["prompt"] for r in assistant.prompts(args.batch, seed=0, split="eval")]
    params = SamplingParams(max_new_tokens=args.new, temperature=1.0)

    def ours() -> int:
        out = sample(model, tokenizer, prompts, params, torch.Generator(device=device).manual_seed(0))
        return int(out.mask.sum())

    tokenizer.padding_side = "left"
    enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)

    @torch.no_grad()
    def theirs() -> int:
        ids = model.generate(**enc, max_new_tokens=args.new, do_sample=True, temperature=1.0, top_p=1.0, top_k=0,
                             pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
        new = ids[:, enc["input_ids"].shape[1]:]
        eos = (new == tokenizer.eos_token_id).int()
        # real tokens: everything up to and including the first EOS
        before_eos = (eos.cumsum(-1) - eos) == 0
        return int(before_eos.sum())

    results = {}
    for name, fn in (("rlhfkit sampler", ours), ("transformers generate", theirs)):
        fn()  # warm-up
        best = 0.0
        for _ in range(args.repeats):
            if device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            n = fn()
            if device == "cuda":
                torch.cuda.synchronize()
            best = max(best, n / (time.perf_counter() - t0))
        results[name] = best
    params_m = sum(p.numel() for p in model.parameters()) / 1e6
    print(f"model {params_m:.1f}M parameters, {model.config.num_hidden_layers} layers, {model.dtype}; "
          f"batch {args.batch}, max new tokens {args.new}, device {device}, threads {torch.get_num_threads()}")
    for name, rate in results.items():
        print(f"  {name:<22} {rate:10.0f} generated tokens/s")
    print(f"  ratio rlhfkit/transformers: {results['rlhfkit sampler'] / results['transformers generate']:.2f}x")


if __name__ == "__main__":
    main()
