using System.Globalization;
using Lowbit.Models;
using Lowbit.Models.HuggingFace;
using Lowbit.Models.IO;
using Lowbit.Models.Safetensors;
using Lowbit.Quantization.Configs;
using Lowbit.Quantization.Formats;
using Lowbit.Tensors;

namespace Lowbit.Quantization.Checkpoints;

/// <summary>
/// Quantized checkpoints (docs/quantized-checkpoints.md): a Hugging Face directory whose model.safetensors holds
/// each quantized linear layer as its format's tensors, named after the layer's weight
/// (<c>L.weight</c>, <c>L.weight_scale</c>, <c>L.weight_zero</c>), with <c>__metadata__</c> entry
/// <c>lowbit.layer.L</c> giving the layer's format name ("int8wo", "int4wo-64"). Everything else is copied as is.
/// Loading maps the tensors back without a copy, so the weights are bit-identical to the quantized ones.
/// The (format type → tensors) and (format family → reader) tables are below, in one place.
/// </summary>
public static class QuantizedCheckpoint
{
    /// <summary>Metadata key naming the config the checkpoint was made with.</summary>
    public const string ConfigKey = "lowbit.quantization";

    /// <summary>Metadata key prefix of each quantized layer's format name.</summary>
    public const string LayerKeyPrefix = "lowbit.layer.";

    /// <summary>Metadata key of the int4 nibble layout version (<see cref="Int4GroupedWeight"/>'s doc).</summary>
    public const string Int4LayoutKey = "lowbit.int4wo.layout";

    public const string Int4Layout = "chunk32-lowhigh-v1";

    /// <summary>Metadata key of the 8da4w nibble layout version (<see cref="Int8DynamicInt4Weight"/>'s doc).</summary>
    public const string Int8DynamicInt4LayoutKey = "lowbit.8da4w.layout";

    public const string Int8DynamicInt4Layout = "block64-lowhigh-v1";

    /// <summary>Metadata key prefix of an nf4-dq layer's scaler block size S (block scales per F32 factor), which its
    /// tensors' shapes do not imply.</summary>
    public const string ScalerBlockKeyPrefix = "lowbit.scaler_block_size.";

    /// <summary>The families whose nibble order is Lowbit's own: (metadata key, the version this code reads).</summary>
    private static readonly Dictionary<string, (string Key, string Version)> s_layouts = new()
    {
        ["int4wo"] = (Int4LayoutKey, Int4Layout),
        [Int4GroupedA8Weight.Family] = (Int4LayoutKey, Int4Layout),
        ["8da4w"] = (Int8DynamicInt4LayoutKey, Int8DynamicInt4Layout),
    };

    /// <summary>How each weight type is stored: (suffix after the layer name, tensor).</summary>
    private static readonly Dictionary<Type, Func<IWeight, (string Suffix, Tensor Tensor)[]>> s_parts = new()
    {
        [typeof(DenseWeight)] = static w => [("weight", ((DenseWeight)w).Tensor)],
        [typeof(Int8PerRowWeight)] = static w =>
        {
            var q = (Int8PerRowWeight)w;
            return [("weight", q.Data), ("weight_scale", q.Scales)];
        },
        [typeof(Int4GroupedWeight)] = static w => Int4Parts((Int4GroupedWeight)w),
        [typeof(Int4GroupedA8Weight)] = static w => Int4Parts(((Int4GroupedA8Weight)w).Weight),
        [typeof(Int8DynamicWeight)] = static w =>
        {
            var q = ((Int8DynamicWeight)w).Weight;
            return [("weight", q.Data), ("weight_scale", q.Scales)];
        },
        [typeof(Float8PerRowWeight)] = static w => CodedParts((CodedWeight)w),
        [typeof(Nf4BlockwiseWeight)] = static w => CodedParts((CodedWeight)w),
        [typeof(Nf4DoubleQuantWeight)] = static w =>
        {
            var q = (Nf4DoubleQuantWeight)w;
            return [("weight", q.Codes), ("weight_scale", q.ScaleCodes), ("weight_scale_factor", q.ScaleFactors), ("weight_scale_mean", q.ScaleMean)];
        },
        [typeof(UIntXGroupedWeight)] = static w => CodedParts((CodedWeight)w),
        [typeof(Fp6PerRowWeight)] = static w => CodedParts((CodedWeight)w),
        [typeof(Float8DynamicWeight)] = static w => CodedParts(((Float8DynamicWeight)w).Weight),
        [typeof(Int8DynamicInt4Weight)] = static w =>
        {
            var q = (Int8DynamicInt4Weight)w;
            return [("weight", q.Packed), ("weight_scale", q.Scales)];
        },
    };

    private static (string Suffix, Tensor Tensor)[] Int4Parts(Int4GroupedWeight w) =>
        [("weight", w.Packed), ("weight_scale", w.Scales), ("weight_zero", w.Zeros)];

    /// <summary>The tensors of a <see cref="CodedWeight"/>: codes, F32 scales and (where the format has them) zeros.</summary>
    private static (string Suffix, Tensor Tensor)[] CodedParts(CodedWeight w) =>
        w.Zeros is null ? [("weight", w.Codes), ("weight_scale", w.Scales)] : [("weight", w.Codes), ("weight_scale", w.Scales), ("weight_zero", w.Zeros)];

    /// <summary>How each format family is read back: (checkpoint, layer name, N, K, parameter after the family's
    /// dash or null) → weight.</summary>
    private static readonly Dictionary<string, Func<CheckpointTensors, string, int, int, int?, IWeight>> s_readers = new()
    {
        ["int8wo"] = static (c, layer, n, k, _) => new Int8PerRowWeight(
            c.Get($"{layer}.weight", [n, k], "int8wo (I8 [N, K])", DType.I8),
            c.Get($"{layer}.weight_scale", [n], "int8wo (scale [N])")),
        ["int4wo"] = static (c, layer, n, k, g) => ReadInt4(c, layer, n, k, g, "int4wo"),
        [Int4GroupedA8Weight.Family] = static (c, layer, n, k, g) => new Int4GroupedA8Weight(ReadInt4(c, layer, n, k, g, Int4GroupedA8Weight.Family)),
        ["uintx-1"] = static (c, layer, n, k, g) => ReadUIntX(c, layer, n, k, 1, g),
        ["uintx-2"] = static (c, layer, n, k, g) => ReadUIntX(c, layer, n, k, 2, g),
        ["uintx-3"] = static (c, layer, n, k, g) => ReadUIntX(c, layer, n, k, 3, g),
        ["uintx-4"] = static (c, layer, n, k, g) => ReadUIntX(c, layer, n, k, 4, g),
        ["uintx-5"] = static (c, layer, n, k, g) => ReadUIntX(c, layer, n, k, 5, g),
        ["uintx-6"] = static (c, layer, n, k, g) => ReadUIntX(c, layer, n, k, 6, g),
        ["uintx-7"] = static (c, layer, n, k, g) => ReadUIntX(c, layer, n, k, 7, g),
        ["fp6"] = static (c, layer, n, k, _) =>
        {
            if (Fp6PerRowWeight.Incompatibility(k) is { } reason)
                throw new InvalidDataException($"{c.Directory}: \"{layer}\" is fp6 but {reason}.");
            return new Fp6PerRowWeight(
                c.Get($"{layer}.weight", [n, k / 4 * 3], "fp6 (U8 [N, 3K/4] 6-bit codes)", DType.U8),
                c.Get($"{layer}.weight_scale", [n, 1], "fp6 (F32 scale [N, 1])", DType.F32), k);
        },
        ["8da4w"] = static (c, layer, n, k, g) =>
        {
            int groupSize = g ?? throw new InvalidDataException($"{c.Directory}: \"{layer}\" is 8da4w without a group size.");
            if (Int8DynamicInt4Weight.Incompatibility(k, groupSize) is { } reason)
                throw new InvalidDataException($"{c.Directory}: \"{layer}\" is {Int8DynamicInt4Weight.NameOf(groupSize)} but {reason}.");
            string shape = $"{Int8DynamicInt4Weight.NameOf(groupSize)} (U8 [N, K/2], F32 [N, K/G])";
            return new Int8DynamicInt4Weight(
                c.Get($"{layer}.weight", [n, k / 2], shape, DType.U8),
                c.Get($"{layer}.weight_scale", [n, k / groupSize], shape, DType.F32), k, groupSize);
        },
        ["fp8dq-tensor"] = static (c, layer, n, k, _) => new Float8DynamicWeight(ReadFloat8(c, layer, n, k, "fp8dq-tensor"), Float8Granularity.PerTensor),
        ["fp8dq-row"] = static (c, layer, n, k, _) => new Float8DynamicWeight(ReadFloat8(c, layer, n, k, "fp8dq-row"), Float8Granularity.PerRow),
        ["int8dq"] = static (c, layer, n, k, _) => new Int8DynamicWeight(new Int8PerRowWeight(
            c.Get($"{layer}.weight", [n, k], "int8dq (I8 [N, K])", DType.I8),
            c.Get($"{layer}.weight_scale", [n], "int8dq (scale [N])"))),
        ["fp8wo"] = static (c, layer, n, k, _) => ReadFloat8(c, layer, n, k, "fp8wo"),
        ["nf4"] = static (c, layer, n, k, b) =>
        {
            int blockSize = b ?? Primitives.Nf4.DefaultBlockSize;
            if (Nf4BlockwiseWeight.Incompatibility(k, blockSize) is { } reason)
                throw new InvalidDataException($"{c.Directory}: \"{layer}\" is {Nf4BlockwiseWeight.NameOf(blockSize)} but {reason}.");
            string shape = $"{Nf4BlockwiseWeight.NameOf(blockSize)} (U8 [N, K/2], F32 [N, K/B])";
            return new Nf4BlockwiseWeight(
                c.Get($"{layer}.weight", [n, k / 2], shape, DType.U8),
                c.Get($"{layer}.weight_scale", [n, k / blockSize], shape, DType.F32), k, blockSize);
        },
        [Nf4DoubleQuantWeight.Family] = static (c, layer, n, k, b) =>
        {
            int blockSize = b ?? Primitives.Nf4.DefaultBlockSize;
            string name = Nf4DoubleQuantWeight.NameOf(blockSize);
            if (Nf4BlockwiseWeight.Incompatibility(k, blockSize) is { } reason)
                throw new InvalidDataException($"{c.Directory}: \"{layer}\" is {name} but {reason}.");
            string? stored = c.Metadata.GetValueOrDefault(ScalerBlockKeyPrefix + layer);
            if (!int.TryParse(stored, NumberStyles.None, CultureInfo.InvariantCulture, out int s) || s <= 0)
                throw new InvalidDataException($"{c.Directory}: \"{layer}\" is {name}; its metadata {ScalerBlockKeyPrefix}{layer} is \"{stored}\", not a positive scaler block size.");
            long groups = (((long)n * (k / blockSize)) + s - 1) / s;
            string shape = $"{name} (U8 [N, K/2], I8 [N, K/B], F32 [⌈N·K/B / {s}⌉], F32 [1])";
            return new Nf4DoubleQuantWeight(
                c.Get($"{layer}.weight", [n, k / 2], shape, DType.U8),
                c.Get($"{layer}.weight_scale", [n, k / blockSize], shape, DType.I8),
                c.Get($"{layer}.weight_scale_factor", [checked((int)groups)], shape, DType.F32),
                c.Get($"{layer}.weight_scale_mean", [1], shape, DType.F32), k, blockSize, s);
        },
    };

    /// <summary>The E4M3 codes and per-row scales of fp8wo and fp8dq.</summary>
    private static Int4GroupedWeight ReadInt4(CheckpointTensors c, string layer, int n, int k, int? g, string family)
    {
        int groupSize = g ?? throw new InvalidDataException($"{c.Directory}: \"{layer}\" is {family} without a group size.");
        if (Int4GroupedWeight.Incompatibility(k, groupSize) is { } reason)
            throw new InvalidDataException($"{c.Directory}: \"{layer}\" is {family}-{groupSize} but {reason}.");
        string shape = $"{family}-{groupSize} (U8 [N, K/2], BF16 [N, K/G])";
        return new Int4GroupedWeight(
            c.Get($"{layer}.weight", [n, k / 2], shape, DType.U8),
            c.Get($"{layer}.weight_scale", [n, k / groupSize], shape, DType.BF16),
            c.Get($"{layer}.weight_zero", [n, k / groupSize], shape, DType.BF16),
            k, groupSize);
    }

    private static Float8PerRowWeight ReadFloat8(CheckpointTensors c, string layer, int n, int k, string format) => new(
        c.Get($"{layer}.weight", [n, k], $"{format} (U8 E4M3 codes [N, K])", DType.U8),
        c.Get($"{layer}.weight_scale", [n, 1], $"{format} (F32 scale [N, 1])", DType.F32), k);

    /// <summary>uintx-B-G: the family is "uintx-B" (the dash parser takes the last number as the parameter).</summary>
    private static IWeight ReadUIntX(CheckpointTensors c, string layer, int n, int k, int bits, int? g)
    {
        int groupSize = g ?? throw new InvalidDataException($"{c.Directory}: \"{layer}\" is uintx-{bits} without a group size.");
        if (UIntXGroupedWeight.Incompatibility(k, bits, groupSize) is { } reason)
            throw new InvalidDataException($"{c.Directory}: \"{layer}\" is {UIntXGroupedWeight.NameOf(bits, groupSize)} but {reason}.");
        string shape = $"{UIntXGroupedWeight.NameOf(bits, groupSize)} (U8 [N, K·B/8], F32 [N, K/G] scales and zeros)";
        return new UIntXGroupedWeight(
            c.Get($"{layer}.weight", [n, k / 8 * bits], shape, DType.U8),
            c.Get($"{layer}.weight_scale", [n, k / groupSize], shape, DType.F32),
            c.Get($"{layer}.weight_zero", [n, k / groupSize], shape, DType.F32),
            k, bits, groupSize);
    }

    /// <summary>
    /// Quantizes the model in <paramref name="sourceDir"/> with <paramref name="config"/> and writes the result to
    /// <paramref name="outDir"/>: config.json and every other non-weight file copied, one model.safetensors.
    /// The directory is built beside <paramref name="outDir"/> and renamed into place only when complete.
    /// </summary>
    public static QuantizationReport Write(string sourceDir, IQuantConfig config, string outDir, bool overwrite = false,
        Func<string, IWeight, bool>? filter = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        var modelConfig = ModelConfigReader.Load(sourceDir);
        using var checkpoint = new CheckpointTensors(sourceDir);
        using var weights = ModelLoader.LoadWeights(checkpoint, modelConfig);
        var report = Quantizer.Quantize(weights, config, filter);

        if (Path.TrimEndingDirectorySeparator(Path.GetFullPath(outDir)) == Path.TrimEndingDirectorySeparator(checkpoint.Directory))
            throw new IOException($"{outDir}: the output directory must differ from the model directory.");
        AtomicPath.WriteDirectory(outDir, overwrite, temp =>
        {
            foreach (string file in Directory.EnumerateFiles(checkpoint.Directory))
            {
                string name = Path.GetFileName(file);
                if (!name.EndsWith(".safetensors", StringComparison.Ordinal) && name != CheckpointTensors.IndexFileName)
                    File.Copy(file, Path.Combine(temp, name));
            }

            WriteTensors(checkpoint, weights, config, Path.Combine(temp, CheckpointTensors.SingleFileName));
        });

        return report;
    }

    /// <summary>The weight of linear layer <paramref name="layer"/> (a Hugging Face name without ".weight") when
    /// the checkpoint's metadata says it is quantized; null for a dense layer.</summary>
    /// <exception cref="InvalidDataException">An unknown format, or tensors of the wrong shape or dtype.</exception>
    public static IWeight? TryLoad(CheckpointTensors checkpoint, string layer, int n, int k)
    {
        ArgumentNullException.ThrowIfNull(checkpoint);
        if (!checkpoint.Metadata.TryGetValue(LayerKeyPrefix + layer, out string? format))
            return null;
        int dash = format.LastIndexOf('-');
        bool parameterized = dash > 0 && int.TryParse(format.AsSpan(dash + 1), out _);
        string family = parameterized ? format[..dash] : format;
        int? parameter = parameterized ? int.Parse(format.AsSpan(dash + 1)) : null;
        if (!s_readers.TryGetValue(family, out var read))
            throw new InvalidDataException($"{checkpoint.Directory}: \"{layer}\" has format \"{format}\", which this version of Lowbit cannot read ({string.Join(", ", s_readers.Keys)}).");
        if (s_layouts.TryGetValue(family, out var layout) && checkpoint.Metadata.GetValueOrDefault(layout.Key) != layout.Version)
            throw new InvalidDataException($"{checkpoint.Directory}: {family} nibble layout \"{checkpoint.Metadata.GetValueOrDefault(layout.Key)}\"; this version reads \"{layout.Version}\".");
        return read(checkpoint, layer, n, k, parameter);
    }

    private static void WriteTensors(CheckpointTensors checkpoint, ModelWeights weights, IQuantConfig config, string path)
    {
        // Model order: the embedding, each block's norms, biases and linears, the final norm, the head.
        var copied = new List<string> { "model.embed_tokens.weight" };
        var linears = new List<(string Name, IWeight Weight)>();
        for (int i = 0; i < weights.Layers.Length; i++)
        {
            string p = $"model.layers.{i}.";
            foreach (string name in new[] { "input_layernorm.weight", "post_attention_layernorm.weight", "self_attn.q_proj.bias", "self_attn.k_proj.bias", "self_attn.v_proj.bias" })
            {
                if (checkpoint.Contains(p + name))
                    copied.Add(p + name);
            }

            foreach (var (name, weight) in weights.Layers[i].Linears())
                linears.Add((p + name, weight));
        }

        copied.Add("model.norm.weight");
        bool tiedHead = weights.Classifier is DenseWeight head && head.Tensor == weights.Embedding;
        if (!tiedHead)
            linears.Add(("lm_head", weights.Classifier));

        var entries = new List<SafetensorsEntry>();
        var tensors = new List<(string Name, Tensor Tensor)>();
        foreach (string name in copied)
        {
            var tensor = checkpoint.Get(name);
            entries.Add(new SafetensorsEntry(name, tensor.DType, tensor.Shape));
            tensors.Add((name, tensor));
        }

        var metadata = new Dictionary<string, string> { ["format"] = "pt", [ConfigKey] = config.ShortName };
        foreach (var (layer, weight) in linears)
        {
            if (!s_parts.TryGetValue(weight.GetType(), out var parts))
                throw new NotSupportedException($"\"{layer}\" is {weight.FormatName}, which quantized checkpoints cannot store.");
            foreach (var (suffix, tensor) in parts(weight))
            {
                entries.Add(new SafetensorsEntry($"{layer}.{suffix}", tensor.DType, tensor.Shape));
                tensors.Add(($"{layer}.{suffix}", tensor));
            }

            if (weight is not DenseWeight)
                metadata[LayerKeyPrefix + layer] = weight.FormatName;
            if (weight is Int4GroupedWeight or Int4GroupedA8Weight)
                metadata[Int4LayoutKey] = Int4Layout;
            if (weight is Int8DynamicInt4Weight)
                metadata[Int8DynamicInt4LayoutKey] = Int8DynamicInt4Layout;
            if (weight is Nf4DoubleQuantWeight dq)
                metadata[ScalerBlockKeyPrefix + layer] = dq.ScalerBlockSize.ToString(CultureInfo.InvariantCulture);
        }

        using var writer = new SafetensorsWriter(path, entries, metadata);
        foreach (var (name, tensor) in tensors)
            writer.WriteTensor(name, tensor);
        writer.Commit();
    }
}
