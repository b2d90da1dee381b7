// Where the shipped default language model lives (a text-pretrained LLaMA made by `deno task pretrain`).

/**
 * The shipped default language model's directory, models/lm-default (an HF LlamaForCausalLM checkpoint
 * with tokenizer.json); `--llm default` of `deno task lm-eval` resolves to it. Not every clone has it.
 */
export const DEFAULT_LM: string = decodeURIComponent(new URL("./lm-default", import.meta.url).pathname);
