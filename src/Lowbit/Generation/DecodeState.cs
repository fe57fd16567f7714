using Lowbit.Models;
using Lowbit.Tensors;

namespace Lowbit.Generation;

/// <summary>
/// Every activation buffer and the KV cache of one sequence, allocated once from the model's shape
/// (llama2.c's RunState): a forward pass allocates nothing.
/// </summary>
public sealed class DecodeState : IDisposable
{
    public DecodeState(ModelConfig config, int maxSequenceLength, int maxBatch)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBatch, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxSequenceLength, 1);
        MaxBatch = maxBatch;
        MaxSequenceLength = maxSequenceLength;
        X = Tensor.Allocate(DType.F32, maxBatch, config.HiddenSize);
        Xb = Tensor.Allocate(DType.F32, maxBatch, config.HiddenSize);
        Q = Tensor.Allocate(DType.F32, maxBatch, config.QDim);
        Attention = Tensor.Allocate(DType.F32, maxBatch, config.QDim);
        Gate = Tensor.Allocate(DType.F32, maxBatch, config.IntermediateSize);
        Up = Tensor.Allocate(DType.F32, maxBatch, config.IntermediateSize);
        Logits = Tensor.Allocate(DType.F32, maxBatch, config.VocabSize);
        Keys = new Tensor[config.NumLayers];
        Values = new Tensor[config.NumLayers];
        for (int l = 0; l < config.NumLayers; l++)
        {
            Keys[l] = Tensor.Allocate(DType.F32, maxSequenceLength, config.KvDim);
            Values[l] = Tensor.Allocate(DType.F32, maxSequenceLength, config.KvDim);
        }
    }

    /// <summary>Most tokens one forward pass takes (the prefill chunk).</summary>
    public int MaxBatch { get; }
    public int MaxSequenceLength { get; }

    public Tensor X { get; }          // residual stream [batch, dim]
    public Tensor Xb { get; }         // normed input / block output [batch, dim]
    public Tensor Q { get; }          // queries [batch, heads·D]
    public Tensor Attention { get; }  // attention output [batch, heads·D]
    public Tensor Gate { get; }       // silu(gate)·up [batch, hidden]
    public Tensor Up { get; }         // [batch, hidden]
    public Tensor Logits { get; }     // [batch, vocab]
    public Tensor[] Keys { get; }     // per layer [maxSeq, kvHeads·D]
    public Tensor[] Values { get; }   // per layer [maxSeq, kvHeads·D]

    /// <summary>Bytes of the KV cache.</summary>
    public long KvCacheBytes => Keys.Sum(k => k.ByteLength) * 2;

    public void Dispose()
    {
        foreach (var t in new[] { X, Xb, Q, Attention, Gate, Up, Logits }.Concat(Keys).Concat(Values))
            t.Dispose();
    }
}
