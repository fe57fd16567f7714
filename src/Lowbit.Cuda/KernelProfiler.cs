using ILGPU.Runtime.Cuda;
using Lowbit.Backends;
using Lowbit.Cuda.Driver;
using Lowbit.Models;
using Lowbit.Quantization.Formats;
using Lowbit.Tensors;

namespace Lowbit.Cuda;

/// <summary>
/// GPU time per operation: an <see cref="IBackend"/> that forwards to a <see cref="CudaBackend"/> and records a
/// CUDA event on its stream after every operation, so the time between two events is the GPU time of the
/// operation between them (launch gaps included). Eager only: run a model on it with
/// <see cref="CudaBackend.RecordSteps"/> off, then read <see cref="Report"/>. For benchmarks; it allocates.
/// </summary>
public sealed class KernelProfiler : IBackend
{
    private readonly CudaBackend _inner;
    private readonly nint _stream;
    private readonly List<(string Name, long Bytes, nint Event)> _marks = [];
    private readonly Stack<nint> _free = new();
    private nint _start;

    public KernelProfiler(CudaBackend inner)
    {
        _inner = inner;
        _stream = inner.Stream is CudaStream cuda ? cuda.StreamPtr : throw new NotSupportedException("KernelProfiler needs a CUDA GPU.");
        Reset();
    }

    /// <summary>Forgets what was recorded; the next operation is timed from now.</summary>
    public void Reset()
    {
        foreach (var (_, _, e) in _marks)
            _free.Push(e);
        _marks.Clear();
        if (_start == 0)
            _start = NewEvent();
        CudaDriver.Check(CudaDriver.cuEventRecord(_start, _stream), "cuEventRecord");
    }

    /// <summary>Per operation name: calls, total GPU microseconds and bytes of weights read, in first-seen order.</summary>
    public List<(string Name, int Calls, double Microseconds, long Bytes)> Report()
    {
        var rows = new List<(string Name, int Calls, double Microseconds, long Bytes)>();
        var index = new Dictionary<string, int>();
        nint previous = _start;
        foreach (var (name, bytes, e) in _marks)
        {
            CudaDriver.Check(CudaDriver.cuEventSynchronize(e), "cuEventSynchronize");
            CudaDriver.Check(CudaDriver.cuEventElapsedTime(out float ms, previous, e), "cuEventElapsedTime");
            previous = e;
            if (!index.TryGetValue(name, out int i))
            {
                index[name] = i = rows.Count;
                rows.Add((name, 0, 0, 0));
            }
            var row = rows[i];
            rows[i] = (name, row.Calls + 1, row.Microseconds + (ms * 1000.0), row.Bytes + bytes);
        }
        return rows;
    }

    private nint NewEvent()
    {
        if (_free.TryPop(out nint e))
            return e;
        CudaDriver.Check(CudaDriver.cuEventCreate(out e, 0), "cuEventCreate");
        return e;
    }

    private void Mark(string name, long bytes = 0)
    {
        nint e = NewEvent();
        CudaDriver.Check(CudaDriver.cuEventRecord(e, _stream), "cuEventRecord");
        _marks.Add((name, bytes, e));
    }

    public string Name => $"{_inner.Name}, profiled";
    public bool UsesHostMemory => false;
    public Tensor Allocate(DType dtype, int rows, int columns) => _inner.Allocate(dtype, rows, columns);
    public void PrepareWeights(ModelWeights weights) => _inner.PrepareWeights(weights);
    public void CopyFromHost(ReadOnlySpan<float> source, TensorView destination) => _inner.CopyFromHost(source, destination);
    public void CopyToHost(TensorView source, Span<float> destination) => _inner.CopyToHost(source, destination);
    public IRecordedStep? RecordStep(Action step) => null;

    public void Embedding(Tensor table, ReadOnlySpan<int> tokens, TensorView destination)
    {
        _inner.Embedding(table, tokens, destination);
        Mark("embedding");
    }

    public void RmsNorm(TensorView x, Tensor weight, float eps, TensorView destination)
    {
        _inner.RmsNorm(x, weight, eps, destination);
        Mark("rmsnorm");
    }

    public void Linear(TensorView x, IWeight weight, TensorView destination)
    {
        _inner.Linear(x, weight, destination);
        Mark($"linear {weight.FormatName} {weight.OutFeatures}x{weight.InFeatures}", weight.ByteLength);
    }

    public void Linear(TensorView x, ReadOnlySpan<IWeight> weights, ReadOnlySpan<TensorView> destinations)
    {
        _inner.Linear(x, weights, destinations);
        long bytes = 0;
        int rows = 0;
        foreach (var w in weights)
        {
            bytes += w.ByteLength;
            rows += w.OutFeatures;
        }
        Mark($"linear {weights[0].FormatName} {rows}x{weights[0].InFeatures} ({weights.Length} fused)", bytes);
    }

    public void AddBias(TensorView x, Tensor bias)
    {
        _inner.AddBias(x, bias);
        Mark("add bias");
    }

    public void RopeAndStoreKv(TensorView q, TensorView k, TensorView v, RopeTable rope, TensorView keys, TensorView values, int startPos)
    {
        _inner.RopeAndStoreKv(q, k, v, rope, keys, values, startPos);
        Mark("rope + store kv");
    }

    public void LinearAddRmsNorm(TensorView x, IWeight weight, TensorView residual, Tensor normWeight, float eps, TensorView normed)
    {
        _inner.LinearAddRmsNorm(x, weight, residual, normWeight, eps, normed);
        Mark($"linear + add + rmsnorm {weight.FormatName} {weight.OutFeatures}x{weight.InFeatures}", weight.ByteLength);
    }

    public void Attention(TensorView q, TensorView keys, TensorView values, int startPos, int heads, int kvHeads, int headDim, TensorView destination)
    {
        _inner.Attention(q, keys, values, startPos, heads, kvHeads, headDim, destination);
        Mark("attention");
    }

    public int Sample(TensorView row, float temperature, int topK, float topP, double uniform)
    {
        int index = _inner.Sample(row, temperature, topK, topP, uniform);
        Mark("sample");
        return index;
    }

    public int ArgMax(TensorView row)
    {
        int index = _inner.ArgMax(row);
        Mark("argmax");
        return index;
    }

    public void GatedLinear(TensorView x, IWeight gate, IWeight up, TensorView destination, TensorView scratch)
    {
        _inner.GatedLinear(x, gate, up, destination, scratch);
        Mark($"gated linear {gate.FormatName} 2×{gate.OutFeatures}x{gate.InFeatures}", gate.ByteLength + up.ByteLength);
    }

    /// <summary>Frees the events; the inner backend stays open (its owner disposes it).</summary>
    public void Dispose()
    {
        foreach (var (_, _, e) in _marks)
            CudaDriver.cuEventDestroy(e);
        while (_free.TryPop(out nint e))
            CudaDriver.cuEventDestroy(e);
        _marks.Clear();
        if (_start != 0)
            CudaDriver.cuEventDestroy(_start);
        _start = 0;
    }
}
