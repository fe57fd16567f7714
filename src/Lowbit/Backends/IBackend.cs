using Lowbit.Models;
using Lowbit.Quantization.Formats;
using Lowbit.Tensors;

namespace Lowbit.Backends;

/// <summary>
/// The operations a Llama-family forward pass needs. Activations are F32 views of [rows, columns];
/// <c>rows</c> is the number of tokens processed at once (1 in decode, the prompt chunk in prefill).
/// Backends are peers: the model code above does not know which one runs.
/// </summary>
public interface IBackend : IDisposable
{
    string Name { get; }

    /// <summary>True when this backend's tensors are host memory (spans over <see cref="Tensor.Data"/> are
    /// valid); false for a device backend, whose tensors hold device addresses.</summary>
    bool UsesHostMemory { get; }

    /// <summary>The KV cache type a model on this backend gets unless told otherwise
    /// (<see cref="Models.ModelLoadOptions.KvCacheType"/>): F32 here; a backend whose attention rounds K and V to bf16
    /// anyway (CUDA's tensor-core prefill) prefers BF16, half the memory at no cost in accuracy.</summary>
    DType PreferredKvCacheType => DType.F32;

    /// <summary>A zeroed [rows, columns] tensor in this backend's memory, for activations and the KV cache
    /// (device memory for CUDA; the tensor owns it).</summary>
    Tensor Allocate(DType dtype, int rows, int columns);

    /// <summary>Readies every weight before the first token: checks each linear layer's format has a kernel
    /// here (failing with the layer's name), and a device backend uploads (and may repack) the weights.</summary>
    /// <exception cref="NotSupportedException">A linear layer's format has no kernel on this backend.</exception>
    void PrepareWeights(ModelWeights weights);

    /// <summary>Copies F32 host data into a tensor of this backend: F32, or BF16 (rounded to nearest even, as a KV
    /// cache is).</summary>
    void CopyFromHost(ReadOnlySpan<float> source, TensorView destination);

    /// <summary>Copies an F32 or BF16 tensor of this backend to the host as floats (waits for the work queued before).</summary>
    void CopyToHost(TensorView source, Span<float> destination);

    /// <summary>destination[i] = table[tokens[i]] widened to F32.</summary>
    void Embedding(Tensor table, ReadOnlySpan<int> tokens, TensorView destination);

    /// <summary>destination = x / sqrt(mean(x²) + eps) · weight, per row.</summary>
    void RmsNorm(TensorView x, Tensor weight, float eps, TensorView destination);

    /// <summary>destination[r, n] = Σ_k x[r, k]·W[n, k].</summary>
    void Linear(TensorView x, IWeight weight, TensorView destination);

    /// <summary>destinations[i] = x·weights[i]ᵀ: projections of one input (q, k and v), one launch where the
    /// backend can.</summary>
    void Linear(TensorView x, ReadOnlySpan<IWeight> weights, ReadOnlySpan<TensorView> destinations);

    /// <summary>x[r, :] += bias.</summary>
    void AddBias(TensorView x, Tensor bias);

    /// <summary>Rotates q and k in place (rotary embedding, rows at positions startPos, startPos + 1, ...) and
    /// appends k and v to the layer's cache (rows [startPos, startPos + k.Rows) of keys and values; a BF16 cache
    /// stores them rounded to nearest even).</summary>
    void RopeAndStoreKv(TensorView q, TensorView k, TensorView v, RopeTable rope, TensorView keys, TensorView values, int startPos);

    /// <summary>Causal grouped-query attention of queries q [rows, heads·D] at positions
    /// startPos.. against the cache rows [0, startPos + rows) of keys and values [maxSeq, kvHeads·D], F32 or BF16.</summary>
    void Attention(TensorView q, TensorView keys, TensorView values, int startPos, int heads, int kvHeads, int headDim, TensorView destination);

    /// <summary><see cref="RopeAndStoreKv"/>, then <see cref="Attention"/> of the rotated q (D = rope.HeadDim): what a
    /// layer runs between its q/k/v and o projections. A backend may do both at once (the CUDA backend's decode step
    /// does, one launch a layer fewer); q and k hold unspecified values afterwards.</summary>
    void RopeAndAttention(TensorView q, TensorView k, TensorView v, RopeTable rope, TensorView keys, TensorView values, int startPos, int heads, int kvHeads,
        TensorView destination)
    {
        ArgumentNullException.ThrowIfNull(rope);
        RopeAndStoreKv(q, k, v, rope, keys, values, startPos);
        Attention(q, keys, values, startPos, heads, kvHeads, rope.HeadDim, destination);
    }

    /// <summary>The index of the largest value of a one-row tensor (the lowest on a tie): greedy sampling
    /// without copying the logits to the host.</summary>
    int ArgMax(TensorView row);

    /// <summary>A token drawn from a one-row tensor of logits at temperature &gt; 0 with top-k (0: off) and top-p
    /// (1: off), by inverting the kept mass at <paramref name="uniform"/> ∈ [0, 1) in index order
    /// (Generation.ThresholdSampling): sampling without copying the logits to the host.</summary>
    int Sample(TensorView row, float temperature, int topK, float topP, double uniform);

    /// <summary>
    /// Records the operations <paramref name="step"/> issues, a one-token forward pass written for token 0 at
    /// position 0, so that <see cref="IRecordedStep.Replay"/> can run them again for any token and position
    /// (a CUDA graph: one launch a token instead of hundreds). Returns null where operations run eagerly
    /// anyway (the CPU); then the caller runs its forward passes as usual.
    /// </summary>
    IRecordedStep? RecordStep(Action step);

    /// <summary>destination = silu(x·gateᵀ) ⊙ (x·upᵀ), silu(g) = g / (1 + e^−g): the first half of the SiLU-gated
    /// MLP, one launch where the backend can; <paramref name="scratch"/> ([rows, up.OutFeatures]) may hold x·upᵀ.</summary>
    void GatedLinear(TensorView x, IWeight gate, IWeight up, TensorView destination, TensorView scratch);

    /// <summary>residual += x·Wᵀ, then normed = RMSNorm(residual)·normWeight: a block's output projection, the
    /// residual add and the next block's norm (or the final norm), one launch where the backend can; normed
    /// ([rows, OutFeatures]) may also hold x·Wᵀ on the way.</summary>
    void LinearAddRmsNorm(TensorView x, IWeight weight, TensorView residual, Tensor normWeight, float eps, TensorView normed);
}
