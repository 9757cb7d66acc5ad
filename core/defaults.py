"""The defaults: every config key, with its meaning, in one place (the config's schema).

An experiment is a Python file whose `get_config()` returns this config with a few keys changed
(experiments/base.py re-exports it); core/config.py loads it and applies `--config.a.b=value`
overrides. Zero for a size, a learning rate, a batch, a warmup or beta2 means "derive it by the
training recipe" (the `recipe` section, model/recipe.py).

A run's id hashes how its resolved config differs from these defaults (training/plan.py,
docs/design.md "Identity"): a key added here with a default that keeps today's behaviour changes
no recorded run's id. Changing what an existing default means needs plan.SCHEMA_VERSION bumped.
"""
import ml_collections



def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.name = "base"
  c.seed = 0
  c.init_from = ""                     # a run directory: start from its final weights (same shape)

  # Fine-tuning a run named by init_from (model/lora.py).
  c.finetune = ml_collections.ConfigDict()
  c.finetune.method = "full"           # full: train every weight | lora: train low-rank adapters only
  c.finetune.lora_rank = 8             # r: adapters A [d_in, r], B [r, d_out] per targeted matrix
  c.finetune.lora_alpha = 0.0          # the adapter's output is scaled by alpha / r; 0: alpha = r
  c.finetune.lora_targets = "attention,mlp"  # attention, mlp or matrix names (query, key_value,
                                       # out, up, gate, down), comma-separated

  c.model = ml_collections.ConfigDict()
  c.model.family = "decoder"           # decoder | encoder | encoder_decoder
  c.model.target_params = 0.0          # non-embedding N; > 0 derives the shape (model/sizing.py)
  c.model.n_layer = 0                  # explicit shape, used when target_params == 0
  c.model.d_model = 0
  c.model.n_heads = 0
  c.model.d_ff = 0                     # 0: 4 * d_model (GELU) or 8/3 * d_model (SwiGLU)
  c.model.mlp = "gelu"                 # gelu | swiglu
  c.model.pos = "rope"                 # rope | learned | sinusoidal
  c.model.tie_embeddings = False
  c.model.dtype = "auto"               # compute dtype: auto (bfloat16 on GPU/TPU, float32 on CPU)
  c.model.remat = False                # rematerialise each block in the backward pass
  c.model.vocab_size = 0               # 0: the data source's vocabulary (filled in by train.py)
  # How init, forward multipliers and per-group lr, Adam eps and weight decay scale with the shape
  # (model/parametrization.py has the table): sp (standard, GPT-2's) | mup (muP for Adam, Tensor
  # Programs V: width) | completep (Dey et al. 2025: muP plus residual branches scaled by
  # base_depth / n_layer, for depth as well). At the base shape all three train identically.
  c.model.parametrization = "sp"
  c.model.base_width = 0               # mup, completep: the d_model where every multiplier is 1
  c.model.base_depth = 0               # completep: the n_layer where its depth multipliers are 1
  # mup, completep: the base shape's head dim D_base (attention logits q k sqrt(D_base) / D); 0:
  # the sizing grid's head dim at base_width when n_heads is derived, else base_width / n_heads.
  # A run's config.json holds the resolved value.
  c.model.base_head_dim = 0.0

  c.data = ml_collections.ConfigDict()
  c.data.source = "synthetic"          # synthetic | text | tfds: data/NAME.py; or a module path (pkg.mod)
  c.data.path = ""                     # text: a file, directory or glob of .txt / .jsonl
  c.data.tfds_name = ""                # tfds: a registered builder name, e.g. "lm1b"
  c.data.tfds_dir = ""                 # tfds: data_dir ("" = tfds default)
  c.data.text_field = "text"           # the field holding the text in .jsonl rows and tfds examples
  c.data.tokenizer = "byte"            # byte | sentencepiece (text and tfds sources)
  c.data.vocab_size = 0                # sentencepiece vocabulary (0: 4096)
  c.data.eval_fraction = 0.01          # held-out share of the documents (text and tfds)
  c.data.cache_dir = ""                # pre-tokenised corpora and tokenizers ("": ~/.cache/scaling_data)
  # A finite pool of train data read in epochs (data/pool.py): train sequences 0..P-1 of the
  # source, P = unique_tokens // train.seq_len, each epoch a permutation keyed by (seed, epoch).
  # 0: fresh data, nothing repeats. Eval sequences are unchanged.
  c.data.unique_tokens = 0
  # More held-out text, each scored at every evaluation (loss and bits per byte):
  # "NAME=PATH,NAME=PATH", a PATH as data.path takes (a file, directory or glob of .txt / .jsonl).
  c.data.eval_sets = ""
  c.data.synthetic = ml_collections.ConfigDict()
  c.data.synthetic.vocab_size = 64
  c.data.synthetic.n_topics = 512
  c.data.synthetic.zipf_exponent = 1.1
  c.data.synthetic.branching = 4       # non-zero next tokens per row of a topic's Markov chain
  c.data.synthetic.dirichlet = 0.5
  c.data.synthetic.seed = 1234         # the language itself; `seed` above only orders the data
  # A related language to fine-tune on: new topics (chains drawn from a stream of the same seed,
  # so the original topics are unchanged) taking new_topic_weight of the topic mixture.
  c.data.synthetic.new_topics = 0
  c.data.synthetic.new_topic_weight = 0.0  # 1.0: only the new topics; 0.5: half old, half new

  c.train = ml_collections.ConfigDict()
  c.train.tokens = 1_000_000           # the token budget D (rounded to whole batches)
  c.train.seq_len = 128
  c.train.batch_size = 0               # sequences per step; 0: the recipe's rule of N and D
  c.train.lr = 0.0                     # peak learning rate; 0: the recipe's rule of N
  c.train.warmup_tokens = 0            # 0: the recipe's rule of N and D
  # A registered schedule (training/schedules/): warmup, then cosine | linear | constant |
  # inverse_sqrt, or wsd (constant peak, a cooldown at the end; Hägele 2024) | wsd_s (constant,
  # cooldowns at several points; Wen 2024)
  c.train.schedule = "cosine"
  c.train.cooldown_points = ()         # fractions of the run where cooldowns end, e.g. (0.5, 1.0);
                                       # (): the schedule's (wsd (1.0,); wsd_s (.05,.1,.2,.5,1); else none)
  c.train.cooldown_fraction = 0.2      # each cooldown's share of the steps up to its end
  c.train.cooldown_shape = "1-sqrt"    # the cooldowns' shape in their progress p, 1-sqrt | linear | cosine
  c.train.min_lr_ratio = 0.1           # cosine, linear: the lr ends at this fraction of the peak,
                                       # exactly at D; a cooldown: of the lr where it starts
  c.train.weight_decay = 0.1
  c.train.b1 = 0.9
  c.train.b2 = 0.0                     # AdamW beta2; 0: the recipe's rule of the batch
  c.train.grad_clip = 1.0
  c.train.grad_accum = 1               # micro-batches per step
  c.train.eval_tokens = 65_536         # held-out tokens per evaluation
  c.train.eval_every = 0               # steps between evaluations; 0: 10 per run
  c.train.log_every = 10               # steps between metrics rows
  c.train.checkpoint_every = 0         # steps between checkpoints; 0: 10 per run
  c.train.keep_checkpoints = 2
  c.train.checkpoint_steps = ()        # more steps to checkpoint and keep (a trunk's branch points)
  c.train.divergence_factor = 3.0      # stop as diverged when loss > factor x ln(vocab)
  c.train.compilation_cache = "~/.cache/scaling/jax"  # persistent XLA cache; "" turns it off
                                       # (SCALING_COMPILATION_CACHE set in the shell wins over it)
  c.train.replicas = 1                 # models of this shape trained together in one jitted step
  c.train.replica_seeds = ()           # one seed per replica; (): seed, seed + 1, ...
  c.train.replica_lrs = ()             # one peak learning rate per replica; (): train.lr for all
  c.train.replica_batch = 0            # replicas vmapped together in the step; 0: 1 on CPU, all else

  # The training recipe (model/recipe.py): the rules that fill in what the config leaves at 0
  # (train.lr, train.batch_size, train.warmup_tokens, train.b2, the shape of model.target_params).
  # It only resolves to those explicit values, so it is left out of a run's hash. Every constant
  # is None here: the named recipe's value; set one to override it. The default recipe's in [].
  c.recipe = ml_collections.ConfigDict()
  c.recipe.name = "default"            # one of model.recipe.RECIPES: default | mup (one muP lr)
  c.recipe.lr_base = None              # [3e-3] lr(N) = lr_base * (N / lr_anchor) ** lr_exponent
  c.recipe.lr_anchor = None            # [1e6] non-embedding parameters
  c.recipe.lr_exponent = None          # [-1/3] (the OLMo ladder's N^-1/3)
  c.recipe.batch_tokens = None         # [4096] tokens per step at batch_anchor parameters, growing
  c.recipe.batch_anchor = None         # [1e5]  as sqrt(N), to a power of two in sequences
  c.recipe.min_steps = None            # [100] the batch halves until a run has this many steps
  c.recipe.warmup_tokens_per_param = None  # [1.0] warmup = min(this x N, warmup_max_fraction x D)
  c.recipe.warmup_max_fraction = None  # [0.1]
  c.recipe.b2 = None                   # [0.95] AdamW beta2 at batches of b2_small_below tokens or more
  c.recipe.b2_small = None             # [0.95] beta2 below b2_small_below tokens per step
  c.recipe.b2_small_below = None       # [0] tokens per step; 0: b2 at every batch
  c.recipe.aspect_ratio = None         # [64] d_model / depth of the sizing rule (model/sizing.py)
  # [sp] the model.parametrization of a config that leaves it at sp (recipe mup: mup), and
  c.recipe.parametrization = None
  c.recipe.base_width = None           # [0] the model.base_width of one that leaves 0 (mup: 16)

  # In-context learning tasks: measurements, not part of what a run computes, so the `eval`
  # section is left out of a run's id (training/plan.py UNHASHED_KEYS).
  c.eval = ml_collections.ConfigDict()
  # Tasks scored as ranked classification at every evaluation (data/tasks.py: the k-shot topic
  # task and its exact Bayes ceiling; training/tasks.py): metrics rows and result.json `tasks`.
  c.eval.tasks = ml_collections.ConfigDict()
  c.eval.tasks.names = "auto"          # comma-separated task names (topic, continuation: any
                                       # source, data/tasks.py); "": none; auto: topic
                                       # for a decoder on the synthetic source (2 topics or more)
                                       # when it fits in train.seq_len + 1 tokens, else none
  c.eval.tasks.shots = (0, 1, 4)       # example sequences before the prefix: one task set each
  c.eval.tasks.choices = 4             # candidate continuations per instance, one the gold
  c.eval.tasks.examples = 64           # instances per task set
  c.eval.tasks.example_tokens = 4      # tokens of each example sequence
  c.eval.tasks.prefix_tokens = 2       # tokens of the prefix the candidates continue
  c.eval.tasks.continuation_tokens = 4 # tokens of each candidate
  c.eval.tasks.passage_tokens = 32     # the continuation task: tokens of the passage continued
  c.eval.tasks.seed = 0                # the task sets' own randomness (the same for every run seed)

  c.mesh = ml_collections.ConfigDict()
  c.mesh.data = -1                     # data-parallel axis size; -1: all devices left
  c.mesh.fsdp = 1                      # parameter/optimizer sharding axis size

  c.wandb = ml_collections.ConfigDict()
  # W&B mirrors metrics.jsonl and never stops a run: a failure is one warning line (wandb_run.py).
  c.wandb.mode = "offline"             # offline | online | disabled
  c.wandb.project = "scaling"
  c.wandb.entity = ""
  c.wandb.group = ""                   # a sweep's runs and its analysis share one (its name)
  c.wandb.tags = ""                    # comma-separated
  c.wandb.init_timeout = 90.0          # seconds to wait for the W&B server before going on without
  c.wandb.budget = 0.0                 # the IsoFLOP budget C a sweep planned the run for (a label)
  return c
