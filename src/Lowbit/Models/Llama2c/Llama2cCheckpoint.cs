using System.Buffers.Binary;
using Lowbit.Models.IO;
using Lowbit.Tensors;

namespace Lowbit.Models.Llama2c;

/// <summary>
/// A llama2.c (Karpathy's run.c, legacy version 0) checkpoint, memory-mapped read-only: a header of seven
/// int32 (<see cref="Llama2cConfig"/>), then the F32 arrays of <see cref="Llama2cWeight"/> in enum order,
/// Wcls only when the classifier is not shared. Tensors are views valid while the checkpoint is open.
/// </summary>
public sealed class Llama2cCheckpoint : IDisposable
{
    private static readonly string[] HeaderFields =
        ["dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"];

    private readonly MappedFile _file;
    private readonly long[] _offsets = new long[Enum.GetValues<Llama2cWeight>().Length];

    public Llama2cCheckpoint(string path)
    {
        _file = new MappedFile(path);
        try
        {
            Config = ReadHeader();
            long offset = Llama2cConfig.HeaderBytes;
            try
            {
                foreach (var w in Enum.GetValues<Llama2cWeight>())
                {
                    if (w == Llama2cWeight.Wcls && Config.SharedClassifier)
                    {
                        _offsets[(int)w] = _offsets[(int)Llama2cWeight.TokenEmbedding];
                        continue;
                    }
                    _offsets[(int)w] = offset;
                    offset = checked(offset + LayerElements(w) * (IsPerLayer(w) ? Config.NumLayers : 1) * sizeof(float));
                }
            }
            catch (OverflowException)
            {
                throw new InvalidDataException($"{Path}: the header ({Config}) describes more than 2^63 bytes.");
            }
            if (offset != _file.Length)
                throw new InvalidDataException(
                    $"{Path}: expected {offset} bytes for {Config}, but the file has {_file.Length} bytes " +
                    (_file.Length < offset ? "(truncated)." : $"({_file.Length - offset} extra)."));
        }
        catch
        {
            _file.Dispose();
            throw;
        }
    }

    /// <summary>Full path of the checkpoint file.</summary>
    public string Path => _file.Path;

    public Llama2cConfig Config { get; }

    /// <summary>The shape of one layer's slice of <paramref name="weight"/> (the whole array for the
    /// weights that are not per layer).</summary>
    public int[] LayerShape(Llama2cWeight weight)
    {
        var c = Config;
        return weight switch
        {
            Llama2cWeight.TokenEmbedding or Llama2cWeight.Wcls => [c.VocabSize, c.Dim],
            Llama2cWeight.RmsAtt or Llama2cWeight.RmsFfn or Llama2cWeight.RmsFinal => [c.Dim],
            Llama2cWeight.Wq => [c.NumHeads * c.HeadSize, c.Dim],
            Llama2cWeight.Wk or Llama2cWeight.Wv => [c.KvDim, c.Dim],
            Llama2cWeight.Wo => [c.Dim, c.NumHeads * c.HeadSize],
            Llama2cWeight.W1 or Llama2cWeight.W3 => [c.HiddenDim, c.Dim],
            Llama2cWeight.W2 => [c.Dim, c.HiddenDim],
            Llama2cWeight.FreqCisReal or Llama2cWeight.FreqCisImag => [c.SeqLen, c.HeadSize / 2],
            _ => throw new ArgumentOutOfRangeException(nameof(weight), weight, null),
        };
    }

    public static bool IsPerLayer(Llama2cWeight weight) => weight is Llama2cWeight.RmsAtt or Llama2cWeight.Wq
        or Llama2cWeight.Wk or Llama2cWeight.Wv or Llama2cWeight.Wo or Llama2cWeight.RmsFfn
        or Llama2cWeight.W1 or Llama2cWeight.W2 or Llama2cWeight.W3;

    /// <summary>The whole array: [layers, ...<see cref="LayerShape"/>] for per-layer weights.</summary>
    public Tensor Get(Llama2cWeight weight)
    {
        int[] shape = IsPerLayer(weight) ? [Config.NumLayers, .. LayerShape(weight)] : LayerShape(weight);
        return Tensor.View(_file.Pointer + (nint)_offsets[(int)weight], DType.F32, shape);
    }

    /// <summary>Layer <paramref name="layer"/>'s slice of a per-layer weight.</summary>
    public Tensor Get(Llama2cWeight weight, int layer)
    {
        if (!IsPerLayer(weight))
            throw new ArgumentException($"{weight} is not a per-layer weight.", nameof(weight));
        ArgumentOutOfRangeException.ThrowIfNegative(layer);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(layer, Config.NumLayers);
        long offset = _offsets[(int)weight] + layer * LayerElements(weight) * sizeof(float);
        return Tensor.View(_file.Pointer + (nint)offset, DType.F32, LayerShape(weight));
    }

    public void Dispose() => _file.Dispose();

    private long LayerElements(Llama2cWeight weight) =>
        Shapes.ElementCount(LayerShape(weight)) ?? throw new OverflowException();

    private Llama2cConfig ReadHeader()
    {
        if (_file.Length < Llama2cConfig.HeaderBytes)
            throw new InvalidDataException(
                $"{Path}: {_file.Length} bytes is shorter than the {Llama2cConfig.HeaderBytes}-byte llama2.c header.");
        var f = new int[HeaderFields.Length];
        for (int i = 0; i < f.Length; i++)
        {
            f[i] = BinaryPrimitives.ReadInt32LittleEndian(_file.Bytes(4 * i, 4));
            // vocab_size alone may be negative: its sign marks a separate classifier.
            int value = i == 5 && f[i] != int.MinValue ? Math.Abs(f[i]) : f[i];
            if (value <= 0)
                throw new InvalidDataException($"{Path}: header field {HeaderFields[i]} is {f[i]}; it must be positive.");
        }
        var config = new Llama2cConfig(f[0], f[1], f[2], f[3], f[4], Math.Abs(f[5]), f[6], SharedClassifier: f[5] > 0);
        if (config.Dim % config.NumHeads != 0)
            throw new InvalidDataException($"{Path}: dim ({config.Dim}) is not divisible by n_heads ({config.NumHeads}).");
        if (config.NumHeads % config.NumKvHeads != 0)
            throw new InvalidDataException($"{Path}: n_heads ({config.NumHeads}) is not divisible by n_kv_heads ({config.NumKvHeads}).");
        if (config.HeadSize % 2 != 0)
            throw new InvalidDataException($"{Path}: head size dim / n_heads = {config.HeadSize} is odd; RoPE rotates pairs.");
        return config;
    }
}
