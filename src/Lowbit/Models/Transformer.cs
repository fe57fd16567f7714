using Lowbit.Backends;
using Lowbit.Generation;
using Lowbit.Tensors;

namespace Lowbit.Models;

/// <summary>
/// The Llama-family forward pass (Llama 2/3, Mistral, Qwen2, TinyLlama, SmolLM): pre-norm blocks of
/// grouped-query attention with rotary embeddings and a SiLU-gated MLP. Written once against
/// <see cref="IBackend"/>; how weights are stored is the backend's business.
/// </summary>
public sealed class Transformer : IDisposable
{
    private readonly IBackend _backend;

    /// <param name="kvCacheType">The element type of the KV caches made for this model (<see cref="NewState"/>): F32 or BF16.</param>
    public Transformer(ModelConfig config, ModelWeights weights, IBackend backend, int maxSequenceLength, DType kvCacheType = DType.F32)
    {
        DecodeState.CheckKvCacheType(kvCacheType, nameof(kvCacheType));
        Config = config;
        Weights = weights;
        _backend = backend;
        MaxSequenceLength = maxSequenceLength;
        KvCacheType = kvCacheType;
        Rope = new RopeTable(config.HeadDim, maxSequenceLength, config.RopeTheta, config.RopeScaling);
    }

    public ModelConfig Config { get; }
    public IBackend Backend => _backend;
    public ModelWeights Weights { get; }
    public RopeTable Rope { get; }
    public int MaxSequenceLength { get; }
    public DType KvCacheType { get; }

    /// <summary>Buffers and a KV cache (<see cref="KvCacheType"/>) for one sequence of up to
    /// <paramref name="maxSequenceLength"/> positions (default: the model's) in passes of up to <paramref name="maxBatch"/> tokens.</summary>
    public DecodeState NewState(int maxBatch, int? maxSequenceLength = null) =>
        new(Config, maxSequenceLength ?? MaxSequenceLength, maxBatch, _backend, KvCacheType);

    /// <summary>
    /// Runs tokens at positions startPos.. through the model, filling the KV cache of
    /// <paramref name="state"/>. Logits are computed for the last <paramref name="logitRows"/> tokens
    /// into state.Logits rows [0, logitRows). tokens.Length must not exceed state.MaxBatch.
    /// </summary>
    public void Forward(ReadOnlySpan<int> tokens, int startPos, DecodeState state, int logitRows = 1)
    {
        int m = tokens.Length;
        if (m == 0 || m > state.MaxBatch)
            throw new ArgumentOutOfRangeException(nameof(tokens), $"{m} tokens; a forward pass takes 1 to {state.MaxBatch}.");
        CheckPositions(startPos, m);
        if (logitRows < 1 || logitRows > m)
            throw new ArgumentOutOfRangeException(nameof(logitRows));
        foreach (int token in tokens)
            CheckToken(token);

        var c = Config;
        var b = _backend;
        TensorView x = state.X.Slice(0, m), xb = state.Xb.Slice(0, m);
        TensorView q = state.Q.Slice(0, m), att = state.Attention.Slice(0, m);
        TensorView gate = state.Gate.Slice(0, m), up = state.Up.Slice(0, m);

        b.Embedding(Weights.Embedding, tokens, x);
        b.RmsNorm(x, Weights.Layers[0].AttentionNorm, c.RmsNormEps, xb);
        for (int l = 0; l < c.NumLayers; l++)
        {
            var w = Weights.Layers[l];
            TensorView keys = state.Keys[l].View(), values = state.Values[l].View();
            TensorView k = state.K.Slice(0, m), v = state.V.Slice(0, m);

            // xb holds this block's normed input.
            b.Linear(xb, [w.Query, w.Key, w.Value], [q, k, v]);
            if (w.QueryBias is not null)
                b.AddBias(q, w.QueryBias);
            if (w.KeyBias is not null)
                b.AddBias(k, w.KeyBias);
            if (w.ValueBias is not null)
                b.AddBias(v, w.ValueBias);
            b.RopeAndAttention(q, k, v, Rope, keys, values, startPos, c.NumHeads, c.NumKvHeads, att);
            b.LinearAddRmsNorm(att, w.Output, x, w.FeedForwardNorm, c.RmsNormEps, xb);

            b.GatedLinear(xb, w.Gate, w.Up, gate, up);
            // The next block's norm, or after the last block the final norm.
            var next = l + 1 < c.NumLayers ? Weights.Layers[l + 1].AttentionNorm : Weights.FinalNorm;
            b.LinearAddRmsNorm(gate, w.Down, x, next, c.RmsNormEps, xb);
        }

        b.Linear(xb.Slice(m - logitRows, logitRows), Weights.Classifier, state.Logits.Slice(0, logitRows));
    }

    /// <summary>
    /// One decode step: <paramref name="token"/> at <paramref name="position"/>, logits into row 0 of
    /// state.Logits. The first step runs as <see cref="Forward"/> does and then asks the backend to record the
    /// step (<see cref="IBackend.RecordStep"/>); where it can (CUDA graphs), later steps replay the recording.
    /// </summary>
    public void Decode(int token, int position, DecodeState state)
    {
        if (state.RecordedStep is { } recorded)
        {
            CheckToken(token);
            CheckPositions(position, 1);
            recorded.Replay(token, position);
            return;
        }
        Forward([token], position, state);
        if (!state.RecordingTried)
        {
            state.RecordingTried = true;
            state.RecordedStep = _backend.RecordStep(() => Forward([0], 0, state));
        }
    }

    private void CheckToken(int token)
    {
        if ((uint)token >= (uint)Config.VocabSize)
            throw new ArgumentOutOfRangeException(nameof(token), $"token id {token} outside the vocabulary [0, {Config.VocabSize}).");
    }

    private void CheckPositions(int startPos, int count)
    {
        if (startPos < 0 || startPos + count > MaxSequenceLength)
            throw new ArgumentOutOfRangeException(nameof(startPos), $"positions [{startPos}, {startPos + count}) exceed the context of {MaxSequenceLength} tokens.");
    }

    public void Dispose() => Rope.Dispose();
}
