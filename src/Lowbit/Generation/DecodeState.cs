using Lowbit.Backends;
using Lowbit.Models;
using Lowbit.Tensors;

namespace Lowbit.Generation;

/// <summary>
/// Every activation buffer and the KV cache of one sequence, allocated once from the model's shape
/// (llama2.c's RunState): a forward pass allocates nothing. The buffers live in the backend's memory
/// (<see cref="IBackend.Allocate"/>: device memory for CUDA); read logits on the host through
/// <see cref="LogitsRow"/>.
/// </summary>
public sealed class DecodeState : IDisposable
{
    private readonly IBackend? _backend;
    private readonly Tensor _hostLogits;

    /// <param name="backend">Where the buffers live; null allocates them in host memory (the CPU backend's).</param>
    /// <param name="kvCacheType">The KV cache's element type: F32, or BF16 (half the memory and the bytes attention
    /// reads; keys and values rounded to nearest even as they are stored).</param>
    public DecodeState(ModelConfig config, int maxSequenceLength, int maxBatch, IBackend? backend = null, DType kvCacheType = DType.F32)
    {
        CheckKvCacheType(kvCacheType, nameof(kvCacheType));
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBatch, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxSequenceLength, 1);
        MaxBatch = maxBatch;
        MaxSequenceLength = maxSequenceLength;
        _backend = backend;
        X = Allocate(maxBatch, config.HiddenSize);
        Xb = Allocate(maxBatch, config.HiddenSize);
        Q = Allocate(maxBatch, config.QDim);
        K = Allocate(maxBatch, config.KvDim);
        V = Allocate(maxBatch, config.KvDim);
        Attention = Allocate(maxBatch, config.QDim);
        Gate = Allocate(maxBatch, config.IntermediateSize);
        Up = Allocate(maxBatch, config.IntermediateSize);
        Logits = Allocate(maxBatch, config.VocabSize);
        _hostLogits = backend is null || backend.UsesHostMemory ? Logits : Tensor.Allocate(DType.F32, maxBatch, config.VocabSize);
        Keys = new Tensor[config.NumLayers];
        Values = new Tensor[config.NumLayers];
        for (int l = 0; l < config.NumLayers; l++)
        {
            Keys[l] = Allocate(maxSequenceLength, config.KvDim, kvCacheType);
            Values[l] = Allocate(maxSequenceLength, config.KvDim, kvCacheType);
        }
    }

    /// <summary>Refuses a KV cache type the backends have no kernels for (they take F32 and BF16).</summary>
    internal static void CheckKvCacheType(DType kvCacheType, string parameter)
    {
        if (kvCacheType is not (DType.F32 or DType.BF16))
            throw new ArgumentOutOfRangeException(parameter, kvCacheType, "The KV cache is F32 or BF16.");
    }

    private Tensor Allocate(int rows, int columns, DType dtype = DType.F32) =>
        _backend?.Allocate(dtype, rows, columns) ?? Tensor.Allocate(dtype, rows, columns);

    /// <summary>Most tokens one forward pass takes (the prefill chunk).</summary>
    public int MaxBatch { get; }
    public int MaxSequenceLength { get; }

    public Tensor X { get; }          // residual stream [batch, dim]
    public Tensor Xb { get; }         // normed input / block output [batch, dim]
    public Tensor Q { get; }          // queries [batch, heads·D]
    public Tensor K { get; }          // this step's keys [batch, kvHeads·D], before they join the cache
    public Tensor V { get; }          // this step's values [batch, kvHeads·D]
    public Tensor Attention { get; }  // attention output [batch, heads·D]
    public Tensor Gate { get; }       // silu(gate)·up [batch, hidden]
    public Tensor Up { get; }         // [batch, hidden]
    public Tensor Logits { get; }     // [batch, vocab] in the backend's memory
    public Tensor[] Keys { get; }     // per layer [maxSeq, kvHeads·D], F32 or BF16
    public Tensor[] Values { get; }   // per layer [maxSeq, kvHeads·D]

    /// <summary>The KV cache's element type.</summary>
    public DType KvCacheType => Keys.Length > 0 ? Keys[0].DType : DType.F32;

    /// <summary>Row <paramref name="row"/> of the logits in host memory: the row itself where the backend
    /// uses host memory, else a copy from the device into a host buffer of this state.</summary>
    public Span<float> LogitsRow(int row)
    {
        if (ReferenceEquals(_hostLogits, Logits))
            return Logits.Row<float>(row);
        var destination = _hostLogits.Row<float>(row);
        _backend!.CopyToHost(Logits.Slice(row, 1), destination);
        return destination;
    }

    /// <summary>The decode step as the backend recorded it (<see cref="IBackend.RecordStep"/>), once tried.</summary>
    internal IRecordedStep? RecordedStep { get; set; }

    internal bool RecordingTried { get; set; }

    /// <summary>Bytes of the KV cache.</summary>
    public long KvCacheBytes => Keys.Sum(k => k.ByteLength) * 2;

    public void Dispose()
    {
        RecordedStep?.Dispose();
        foreach (var t in new[] { X, Xb, Q, K, V, Attention, Gate, Up, Logits }.Concat(Keys).Concat(Values))
            t.Dispose();
        if (!ReferenceEquals(_hostLogits, Logits))
            _hostLogits.Dispose();
    }
}
