using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using Lowbit.Backends;
using Lowbit.Cuda.Kernels;
using Lowbit.Models;
using Lowbit.Quantization.Formats;
using Lowbit.Tensors;

namespace Lowbit.Cuda;

/// <summary>
/// The NVIDIA backend: ILGPU kernels compiled to PTX at run time (only the driver is needed). Activations
/// and the KV cache live in device memory (<see cref="Allocate"/>: a <see cref="Tensor"/> whose Data is a
/// device address, owning its buffer); weights are uploaded once by <see cref="PrepareWeights"/> and found
/// again by their host tensor. An operation maps a <see cref="TensorView"/> back to the buffer that holds it
/// (a binary search over this backend's allocations, no allocation). Kernels run in order on the
/// accelerator's default stream; <see cref="CopyToHost"/> waits for them.
/// Any ILGPU accelerator works: the tests run the same kernels on ILGPU's CPU accelerator, which checks their
/// logic but not the PTX (ILGPU-NOTES.md).
/// </summary>
public sealed unsafe partial class CudaBackend : IBackend
{
    private readonly Context? _context;
    private readonly Accelerator _accelerator;
    private readonly AcceleratorStream _stream;
    private readonly List<MemoryBuffer1D<byte, Stride1D.Dense>> _allocations = []; // sorted by address
    private readonly Dictionary<Tensor, MemoryBuffer1D<byte, Stride1D.Dense>> _uploads = new(ReferenceEqualityComparer.Instance);
    private readonly Kernels.Embedding _embedding;
    private readonly Kernels.RmsNorm _rmsNorm;
    private readonly DenseLinear _linear;
    private readonly Kernels.Rope _rope;
    private readonly Kernels.Attention _attention;
    private readonly Elementwise _elementwise;
    private readonly Kernels.ArgMax _argMax;
    private readonly Sampling _sampling;
    private readonly MemoryBuffer1D<int, Stride1D.Dense> _stepInputs; // [token, position] of a replayed step; [index] of ArgMax
    private readonly MemoryBuffer1D<int, Stride1D.Dense> _argMaxResult;
    private bool _recording;
    private MemoryBuffer1D<int, Stride1D.Dense>? _tokens, _attentionTickets;
    private MemoryBuffer1D<float, Stride1D.Dense>? _scores, _probabilities;
    private MemoryBuffer1D<float, Stride1D.Dense>? _ropeCos, _ropeSin;
    private RopeTable? _ropeUploaded;

    /// <summary>Runs on <paramref name="accelerator"/>; disposes it (and <paramref name="context"/>, when
    /// given) with the backend.</summary>
    public CudaBackend(Accelerator accelerator, Context? context = null)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        _accelerator = accelerator;
        _context = context;
        _embedding = new Kernels.Embedding(accelerator);
        _rmsNorm = new Kernels.RmsNorm(accelerator);
        _linear = new DenseLinear(accelerator);
        _rope = new Kernels.Rope(accelerator);
        _attention = new Kernels.Attention(accelerator);
        _elementwise = new Elementwise(accelerator);
        _argMax = new Kernels.ArgMax(accelerator);
        _sampling = new Sampling(accelerator);
        _stream = accelerator.CreateStream();
        _stepInputs = accelerator.Allocate1D<int>(2);
        _argMaxResult = accelerator.Allocate1D<int>(1);
        _normSums = accelerator.Allocate1D<double>(2 * ResidualNorm.Slots);
        _normSums.MemSetToZero(_stream);
    }

    /// <summary>The first CUDA GPU.</summary>
    /// <exception cref="NotSupportedException">No NVIDIA driver or no GPU: one line saying which.</exception>
    public static CudaBackend Open()
    {
        Context? context = null;
        Accelerator accelerator;
        try
        {
            // O2 adds ILGPU's address-space inference: weight loads become ld.global.v4 instead of generic ld.v4.
            context = Context.Create(b => b.Cuda().Optimize(OptimizationLevel.O2));
            var devices = context.GetCudaDevices();
            if (devices.Count == 0)
                throw new NotSupportedException("--device cuda: no CUDA GPU found (needs an NVIDIA GPU and its driver's libcuda.so.1; no CUDA toolkit).");
            accelerator = devices[0].CreateAccelerator(context);
        }
        catch (Exception e) when (e is not NotSupportedException)
        {
            context?.Dispose();
            throw new NotSupportedException($"--device cuda: the CUDA driver could not be used ({e.GetType().Name}: {e.Message.ReplaceLineEndings(" ")}).", e);
        }
        catch
        {
            context?.Dispose();
            throw;
        }
        return new CudaBackend(accelerator, context);
    }

    /// <summary>True when <see cref="Open"/> would find a GPU (the driver loads and lists one).</summary>
    public static bool IsAvailable()
    {
        try
        {
            using var context = Context.Create(b => b.Cuda());
            return context.GetCudaDevices().Count > 0;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or TypeInitializationException
                                      or CudaException or InvalidOperationException or NotSupportedException)
        {
            return false;
        }
    }

    public string Name => $"cuda ({_accelerator.Name}, {_accelerator.MemorySize >> 20} MiB)";

    /// <summary>True on ILGPU's CPU accelerator (the tests' emulation of the kernels, where CI runs them).</summary>
    public bool IsEmulated => _accelerator.AcceleratorType == AcceleratorType.CPU;

    public Accelerator Accelerator => _accelerator;

    /// <summary>Warps sharing a GEMV row (dense) or four-row set (quantized): 1, 2 or 4; 0 (the default) lets each
    /// kernel choose (dense: one; quantized: by the matrix's rows and the kernel's occupancy). For the checks and
    /// the bench's sweep (<c>lowbit selftest --bench</c>).</summary>
    public int GemvSplit
    {
        get => _linear.Split;
        set
        {
            if (value is not (0 or 1 or 2 or 4))
                throw new ArgumentOutOfRangeException(nameof(value), value, "GemvSplit is 0 (automatic), 1, 2 or 4.");
            _linear.Split = value;
        }
    }

    /// <summary>The stream every operation is launched on, in order.</summary>
    public AcceleratorStream Stream => _stream;

    public bool UsesHostMemory => false;

    /// <summary>BF16 where prefill attention runs on tensor cores (it rounds K and V to bf16 as it reads them, so a BF16
    /// cache changes no prefill result and halves the cache), F32 elsewhere (ILGPU's CPU accelerator, pre-Ampere GPUs).</summary>
    public DType PreferredKvCacheType => HasTensorCores && AttentionOnTensorCores ? DType.BF16 : DType.F32;

    public Tensor Allocate(DType dtype, int rows, int columns)
    {
        long bytes = Math.Max(16, ((long)rows * columns * dtype.Size() + 15) & ~15L);
        var buffer = _accelerator.Allocate1D<byte>(bytes);
        buffer.MemSetToZero(_stream);
        _stream.Synchronize();
        Register(buffer);
        return Tensor.View(buffer.NativePtr, dtype, [rows, columns], new Allocation(this, buffer));
    }

    /// <summary>Uploads every weight (norms, biases, the embedding and every linear layer) once.</summary>
    public void PrepareWeights(ModelWeights weights)
    {
        ArgumentNullException.ThrowIfNull(weights);
        foreach (var (name, weight) in weights.Linears())
        {
            if (!HasLinearKernel(weight))
                throw new NotSupportedException($"\"{name}\" is {weight.FormatName}, which the CUDA backend has no linear kernel for (dense, int8wo, int8dq, fp8wo, int4wo-G).");
        }
        Words(weights.Embedding);
        Words(weights.FinalNorm);
        foreach (var layer in weights.Layers)
        {
            Words(layer.AttentionNorm);
            Words(layer.FeedForwardNorm);
            foreach (var bias in new[] { layer.QueryBias, layer.KeyBias, layer.ValueBias })
            {
                if (bias is not null)
                    Words(bias);
            }
        }
        foreach (var (_, weight) in weights.Linears())
            UploadLinear(weight);
        _accelerator.Synchronize();
    }

    public void CopyFromHost(ReadOnlySpan<float> source, TensorView destination)
    {
        if (source.Length != destination.ElementCount)
            throw new ArgumentException($"{source.Length} floats do not fill {destination}.", nameof(source));
        Overwritten(destination);
        if (destination.DType == DType.BF16)
        {
            // Off the hot path (tests, a cache filled from the host): narrowed on the host first.
            var bits = new ushort[source.Length];
            DTypeConversion.FromSingle(source, DType.BF16, bits);
            Halves(destination).CopyFromCPU(_stream, ref bits[0], bits.Length);
        }
        else
        {
            F32(destination).CopyFromCPU(_stream, ref MemoryMarshal.GetReference(source), source.Length);
        }
        _stream.Synchronize();
    }

    public void CopyToHost(TensorView source, Span<float> destination)
    {
        if (destination.Length != source.ElementCount)
            throw new ArgumentException($"{source} does not fit {destination.Length} floats.", nameof(destination));
        Settle(source);
        if (source.DType == DType.BF16)
        {
            var bits = new ushort[destination.Length];
            Halves(source).CopyToCPU(_stream, ref bits[0], bits.Length);
            _stream.Synchronize();
            DTypeConversion.ToSingle(MemoryMarshal.AsBytes(bits.AsSpan()), DType.BF16, destination);
            return;
        }
        F32(source).CopyToCPU(_stream, ref MemoryMarshal.GetReference(destination), destination.Length);
        _stream.Synchronize();
    }

    public void Embedding(Tensor table, ReadOnlySpan<int> tokens, TensorView destination)
    {
        Overwritten(destination);
        // A forward pass starts here: the norm fold's slot sets start at zero and at set 0, however many producers
        // the pass has (a recorded step then replays after itself with the sets it was recorded with).
        _normSums.View.MemSetToZero(_stream);
        _normSet = 0;
        if (_recording)
        {
            // The replayed step's token, written by Replay.
            _embedding.Launch(_stream, _stepInputs.View.SubView(0, 1), Words(table), F32(destination), 1, table.Columns, DenseElements.Code(table.DType));
            return;
        }
        var ids = Grown(ref _tokens, Math.Max(64, tokens.Length)).View.SubView(0, tokens.Length);
        ids.CopyFromCPU(_stream, ref MemoryMarshal.GetReference(tokens), tokens.Length);
        _embedding.Launch(_stream, ids, Words(table), F32(destination), tokens.Length, table.Columns, DenseElements.Code(table.DType));
    }

    public void RmsNorm(TensorView x, Tensor weight, float eps, TensorView destination)
    {
        if (Skips(DecodeOps.Norms, x.Rows))
            return;
        Settle(x);
        Overwritten(destination);
        ArrayView<float> xs = F32(x), ws = Words(weight).Cast<float>(), ys = F32(destination);
        bool aligned = Aligned(xs) && Aligned(ws) && Aligned(ys);
        _rmsNorm.Launch(_stream, xs, null, ws, ys, x.Rows, x.Columns, eps, aligned);
    }

    private static bool Aligned(ArrayView<float> view) => view.LoadEffectiveAddressAsPtr() % 16 == 0;

    /// <summary>A scratch buffer of at least <paramref name="length"/> elements: <paramref name="buffer"/>, or a new
    /// one (<paramref name="zeroed"/>: cleared) in its place. A recorded step has the addresses baked in, so
    /// growing while recording is refused: run the step eagerly first (Transformer.Decode does).</summary>
    private MemoryBuffer1D<T, Stride1D.Dense> Grown<T>(ref MemoryBuffer1D<T, Stride1D.Dense>? buffer, long length, bool zeroed = false)
        where T : unmanaged
    {
        if (buffer is not null && buffer.Length >= length)
            return buffer;
        if (_recording)
            throw new InvalidOperationException($"A {typeof(T).Name} scratch buffer would grow to {length} while recording a step: run the step eagerly first.");
        buffer?.Dispose();
        buffer = _accelerator.Allocate1D<T>(length);
        if (zeroed)
            buffer.MemSetToZero(_stream);
        return buffer;
    }

    public void Linear(TensorView x, IWeight weight, TensorView destination)
    {
        var input = InputFor(x, weight);
        if (weight is not DenseWeight dense)
        {
            PackedLinear(x, weight, destination, input: input);
        }
        else if (!TensorCoreLinear(x, dense, destination))
        {
            var w = dense.Tensor;
            int dtype = DenseElements.Code(w.DType);
            bool vector = DenseLinear.VectorLoadsFit(x.Columns, dtype, x.Data - AllocationOf(x.Data).NativePtr);
            _linear.Launch(_stream, F32(x), Words(w), F32(destination), x.Rows, dense.OutFeatures, dense.InFeatures, dtype, vector, input: input);
        }
        Overwritten(destination);
    }

    public void AddBias(TensorView x, Tensor bias)
    {
        Settle(x);
        _elementwise.AddBias(_stream, F32(x), Words(bias).Cast<float>(), x.Columns);
    }

    public void RopeAndStoreKv(TensorView q, TensorView k, TensorView v, RopeTable rope, TensorView keys, TensorView values, int startPos)
    {
        if (Skips(DecodeOps.Rope, q.Rows))
            return;
        Settle(q);
        Settle(k);
        Settle(v);
        if (startPos + k.Rows > keys.Rows)
            throw new ArgumentOutOfRangeException(nameof(startPos), $"positions up to {startPos + k.Rows} exceed the cache of {keys.Rows} rows.");
        var (cos, sin) = RopeTables(rope);
        var shape = new RopeShape { Rows = q.Rows, Heads = q.Columns / rope.HeadDim, KvHeads = k.Columns / rope.HeadDim, HeadDim = rope.HeadDim };
        void Launch<TKv>(TKv ks, TKv vs)
            where TKv : struct, IKvElements => _rope.Launch(_stream, F32(q), F32(k), F32(v), ks, vs, cos, sin, shape, _stepInputs.View, Start(startPos));
        if (Bf16Cache(keys, values))
            Launch(new Bf16Kv(Halves(keys)), new Bf16Kv(Halves(values)));
        else
            Launch(new F32Kv(F32(keys)), new F32Kv(F32(values)));
    }

    /// <summary>True for a BF16 KV cache, false for F32 (the two the kernels take; keys and values alike).</summary>
    private static bool Bf16Cache(TensorView keys, TensorView values)
    {
        if (keys.DType != values.DType || keys.DType is not (DType.F32 or DType.BF16))
            throw new NotSupportedException($"The CUDA backend's KV cache is F32 or BF16, keys and values alike; got {keys} and {values}.");
        return keys.DType == DType.BF16;
    }

    /// <summary>The rope table's cos and sin on the device (uploaded when the table changes).</summary>
    private (ArrayView<float> Cos, ArrayView<float> Sin) RopeTables(RopeTable rope)
    {
        if (!ReferenceEquals(rope, _ropeUploaded))
        {
            _ropeCos?.Dispose();
            _ropeSin?.Dispose();
            _ropeCos = _accelerator.Allocate1D(rope.Cos.ToArray());
            _ropeSin = _accelerator.Allocate1D(rope.Sin.ToArray());
            _ropeUploaded = rope;
        }
        return (_ropeCos!.View, _ropeSin!.View);
    }

    /// <summary>Decode (one row) as one launch a layer: the attention kernel rotates q as it stages it, and the group
    /// that walks the last chunk rotates k into the cache row and stores v before reading the chunk
    /// (<see cref="Kernels.Attention"/>); otherwise, and when a what-if leaves rope or attention out, the two operations.</summary>
    public void RopeAndAttention(TensorView q, TensorView k, TensorView v, RopeTable rope, TensorView keys, TensorView values, int startPos, int heads, int kvHeads,
        TensorView destination)
    {
        ArgumentNullException.ThrowIfNull(rope);
        int d = rope.HeadDim;
        var shape = new AttentionShape { Heads = heads, KvHeads = kvHeads, HeadDim = d, MaxSequence = keys.Rows, Scale = 1f / MathF.Sqrt(d) };
        if (q.Rows != 1 || k.Rows != 1 || d % 2 != 0 || heads % kvHeads != 0 || q.Columns != heads * d || k.Columns != kvHeads * d || v.Columns != kvHeads * d
            || !Kernels.Attention.DecodeFits(shape) || (Skipped & (DecodeOps.Rope | DecodeOps.Attention)) != 0)
        {
            RopeAndStoreKv(q, k, v, rope, keys, values, startPos);
            Attention(q, keys, values, startPos, heads, kvHeads, d, destination);
            return;
        }
        Settle(q);
        Settle(k);
        Settle(v);
        Overwritten(destination);
        if (startPos + 1 > keys.Rows)
            throw new ArgumentOutOfRangeException(nameof(startPos), $"position {startPos} is past the cache of {keys.Rows} rows.");
        var (cos, sin) = RopeTables(rope);
        var scores = Grown(ref _scores, _attention.Scratch(shape, 1, aligned: true));
        var tickets = Grown(ref _attentionTickets, kvHeads, zeroed: true);
        void Launch<TKv>(TKv ks, TKv vs)
            where TKv : struct, IKvElements => _attention.LaunchDecodeWithRope(_stream, F32(q), F32(k), F32(v), cos, sin, ks, vs, scores.View, tickets.View,
                F32(destination), _stepInputs.View, Start(startPos), shape);
        if (Bf16Cache(keys, values))
            Launch(new Bf16Kv(Halves(keys)), new Bf16Kv(Halves(values)));
        else
            Launch(new F32Kv(F32(keys)), new F32Kv(F32(values)));
    }

    public void Attention(TensorView q, TensorView keys, TensorView values, int startPos, int heads, int kvHeads, int headDim, TensorView destination)
    {
        if (Skips(DecodeOps.Attention, q.Rows))
            return;
        Settle(q);
        Overwritten(destination);
        if (heads % kvHeads != 0)
            throw new ArgumentException($"Attention: heads ({heads}) must be a multiple of kvHeads ({kvHeads}).", nameof(kvHeads));
        if (startPos + q.Rows > keys.Rows)
            throw new ArgumentOutOfRangeException(nameof(startPos), $"positions up to {startPos + q.Rows} exceed the cache of {keys.Rows} rows.");
        var shape = new AttentionShape
        {
            Heads = heads,
            KvHeads = kvHeads,
            HeadDim = headDim,
            MaxSequence = keys.Rows,
            Scale = 1f / MathF.Sqrt(headDim),
        };
        bool bf16 = Bf16Cache(keys, values);
        ArrayView<float> qs = F32(q), os = F32(destination);
        bool aligned = Aligned(qs) && Aligned(os) && keys.Data % 16 == 0 && values.Data % 16 == 0;
        var scores = Grown(ref _scores, _attention.Scratch(shape, q.Rows, aligned));
        var tickets = Grown(ref _attentionTickets, kvHeads, zeroed: true);
        if (q.Rows > 1 && aligned && !_recording && ReadyFlashAttention(headDim) is { } flash)
        {
            flash.Launch(_stream, q.Data, keys.Data, values.Data, destination.Data, q.Rows, startPos, heads, kvHeads, headDim, shape.Scale, bf16);
            return;
        }
        void Launch<TKv>(TKv ks, TKv vs)
            where TKv : struct, IKvElements => _attention.Launch(_stream, qs, ks, vs, scores.View, tickets.View, os, q.Rows, _stepInputs.View, Start(startPos), shape, aligned);
        if (bf16)
            Launch(new Bf16Kv(Halves(keys)), new Bf16Kv(Halves(values)));
        else
            Launch(new F32Kv(F32(keys)), new F32Kv(F32(values)));
    }

    public int Sample(TensorView row, float temperature, int topK, float topP, double uniform)
    {
        if (temperature <= 0f)
            return ArgMax(row);
        Settle(row);
        int n = (int)row.ElementCount;
        var args = new SamplingArgs { InverseTemperature = 1f / temperature, TopK = topK, TopP = topP, Uniform = (float)uniform };
        _sampling.Launch(_stream, F32(row), Grown(ref _probabilities, n).View, _argMaxResult.View, n, args);
        return ChosenToken();
    }

    public int ArgMax(TensorView row)
    {
        Settle(row);
        _argMax.Launch(_stream, F32(row), _argMaxResult.View, (int)row.ElementCount);
        return ChosenToken();
    }

    /// <summary>The token ArgMax or Sample wrote, once the stream has run them: the one int a step reads back.</summary>
    private int ChosenToken()
    {
        int index = 0;
        _argMaxResult.View.CopyToCPU(_stream, ref index, 1);
        _stream.Synchronize();
        return index;
    }

    public void GatedLinear(TensorView x, IWeight gate, IWeight up, TensorView destination, TensorView scratch)
    {
        var input = InputFor(x, gate, up);
        if (x.Rows == 1 && DenseVectors(x, gate) is { } g && DenseVectors(x, up) is { } u && g.DType == u.DType)
        {
            _linear.LaunchGated(_stream, F32(x), input, Words(g), Words(u), F32(destination), gate.OutFeatures, gate.InFeatures, DenseElements.Code(g.DType));
        }
        else if (!FusedPackedGemv(x, [gate, up], [destination], gated: true, input) && (x.Rows == 1 || !GatedOnTensorCores(x, gate, up, destination)))
        {
            if (x.Rows == 1 || !TensorCoreLinears(x, [gate, up], [destination, scratch]))
            {
                Linear(x, gate, destination);
                Linear(x, up, scratch);
            }
            _elementwise.SiluMul(_stream, F32(destination), F32(scratch));
        }
        Overwritten(destination);
        Overwritten(scratch);
    }

    public void Linear(TensorView x, ReadOnlySpan<IWeight> weights, ReadOnlySpan<TensorView> destinations)
    {
        if (weights.Length != destinations.Length)
            throw new ArgumentException($"{weights.Length} weights for {destinations.Length} destinations.", nameof(destinations));
        var input = InputFor(x, weights);
        if (x.Rows == 1 && weights.Length == 3 && DenseVectors(x, weights[0]) is { } a && DenseVectors(x, weights[1]) is { } b
            && DenseVectors(x, weights[2]) is { } c && a.DType == b.DType && b.DType == c.DType)
        {
            _linear.LaunchFused(_stream, F32(x), input, x.Columns, DenseElements.Code(a.DType),
                Words(a), F32(destinations[0]), weights[0].OutFeatures, Words(b), F32(destinations[1]), weights[1].OutFeatures,
                Words(c), F32(destinations[2]), weights[2].OutFeatures);
        }
        else if (!FusedPackedGemv(x, weights, destinations, gated: false, input) && (x.Rows == 1 || !TensorCoreLinears(x, weights, destinations)))
        {
            for (int i = 0; i < weights.Length; i++)
                Linear(x, weights[i], destinations[i]);
        }
        foreach (var destination in destinations)
            Overwritten(destination);
    }

    /// <summary>The dense tensor of <paramref name="weight"/> when the vector GEMV can read it with this x.</summary>
    private Tensor? DenseVectors(TensorView x, IWeight weight) =>
        weight is DenseWeight dense && DenseLinear.VectorLoadsFit(x.Columns, DenseElements.Code(dense.Tensor.DType), x.Data - AllocationOf(x.Data).NativePtr)
            ? dense.Tensor : null;

    /// <summary>Positions in a recorded step are relative to the replayed one's.</summary>
    private StepPosition Start(int startPos) => _recording ? StepPosition.Recorded(startPos) : StepPosition.Eager(startPos);

    public void Dispose()
    {
        _accelerator.Synchronize();
        DisposeTensorCores();
        foreach (var buffer in _uploads.Values)
            buffer.Dispose();
        _uploads.Clear();
        DisposePacked();
        foreach (var buffer in _allocations)
            buffer.Dispose();
        _allocations.Clear();
        _tokens?.Dispose();
        _scores?.Dispose();
        _attentionTickets?.Dispose();
        _normSums.Dispose();
        _probabilities?.Dispose();
        _ropeCos?.Dispose();
        _ropeSin?.Dispose();
        _stepInputs.Dispose();
        _argMaxResult.Dispose();
        _stream.Dispose();
        _accelerator.Dispose();
        _context?.Dispose();
    }

    /// <summary>A tensor's device data as 32-bit words: the tensor itself when it lives in this backend's
    /// memory (<see cref="Allocate"/>: e.g. a random-weight model made on the device), else the device copy of
    /// the host tensor, uploaded on first use (PrepareWeights uploads a model's up front, so the first token
    /// does not pay for it).</summary>
    private ArrayView<uint> Words(Tensor tensor)
    {
        if (TryAllocationOf(tensor.Data) is { } buffer)
            return ((ArrayView<byte>)buffer.View).SubView(tensor.Data - buffer.NativePtr, (tensor.ByteLength + 3) & ~3L).Cast<uint>();
        return ((ArrayView<byte>)Upload(tensor).View).Cast<uint>();
    }

    private MemoryBuffer1D<byte, Stride1D.Dense> Upload(Tensor host)
    {
        if (_uploads.TryGetValue(host, out var buffer))
            return buffer;
        if (TryAllocationOf(host.Data) is not null)
            throw new InvalidOperationException($"{host} already lives in this backend's memory.");
        long bytes = host.ByteLength;
        // Padded to 16 bytes so the last row's 16-byte loads stay inside the buffer.
        buffer = _accelerator.Allocate1D<byte>(Math.Max(16, (bytes + 15) & ~15L));
        buffer.MemSetToZero(_stream);
        const long chunk = 1L << 30;
        for (long offset = 0; offset < bytes; offset += chunk)
        {
            long length = Math.Min(chunk, bytes - offset);
            buffer.View.SubView(offset, length).CopyFromCPU(_stream, ref Unsafe.AsRef<byte>((void*)(host.Data + (nint)offset)), length);
        }
        _stream.Synchronize();
        _uploads.Add(host, buffer);
        return buffer;
    }

    /// <summary>The F32 device view of a tensor view made by <see cref="Allocate"/>.</summary>
    private ArrayView<float> F32(TensorView view)
    {
        if (view.DType != DType.F32)
            throw new NotSupportedException($"The CUDA backend's activations are F32; got {view}.");
        return Bytes(view).Cast<float>();
    }

    /// <summary>A BF16 view (a KV cache) as its 16-bit words.</summary>
    private ArrayView<ushort> Halves(TensorView view)
    {
        if (view.DType != DType.BF16)
            throw new NotSupportedException($"Expected a BF16 view; got {view}.");
        return Bytes(view).Cast<ushort>();
    }

    private ArrayView<byte> Bytes(TensorView view)
    {
        var buffer = AllocationOf(view.Data);
        long offset = view.Data - buffer.NativePtr, bytes = view.ElementCount * view.DType.Size();
        if (offset + bytes > buffer.Length)
            throw new ArgumentException($"{view} runs past the end of its device buffer.", nameof(view));
        return ((ArrayView<byte>)buffer.View).SubView(offset, bytes);
    }

    private MemoryBuffer1D<byte, Stride1D.Dense> AllocationOf(nint address) =>
        TryAllocationOf(address)
        ?? throw new ArgumentException($"Address 0x{address:x} is not in this CUDA backend's memory: allocate activations with IBackend.Allocate.");

    private MemoryBuffer1D<byte, Stride1D.Dense>? TryAllocationOf(nint address)
    {
        int lo = 0, hi = _allocations.Count - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            var buffer = _allocations[mid];
            if (address < buffer.NativePtr)
                hi = mid - 1;
            else if (address >= buffer.NativePtr + (nint)buffer.Length)
                lo = mid + 1;
            else
                return buffer;
        }
        return null;
    }

    private void Register(MemoryBuffer1D<byte, Stride1D.Dense> buffer)
    {
        int i = 0;
        while (i < _allocations.Count && _allocations[i].NativePtr < buffer.NativePtr)
            i++;
        _allocations.Insert(i, buffer);
    }

    private void Free(MemoryBuffer1D<byte, Stride1D.Dense> buffer)
    {
        if (!_allocations.Remove(buffer))
            return;
        // A pending norm row in freed memory must not be scaled later over whatever is allocated there next.
        if (_pending.On && _pending.View.Data >= buffer.NativePtr && _pending.View.Data < buffer.NativePtr + (nint)buffer.LengthInBytes)
            _pending.On = false;
        buffer.Dispose();
    }

    /// <summary>Owner of an <see cref="Allocate"/>d tensor's buffer.</summary>
    private sealed class Allocation(CudaBackend backend, MemoryBuffer1D<byte, Stride1D.Dense> buffer) : IDisposable
    {
        public void Dispose() => backend.Free(buffer);
    }
}
