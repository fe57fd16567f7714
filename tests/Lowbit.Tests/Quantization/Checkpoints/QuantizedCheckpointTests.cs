using Lowbit.Generation;
using Lowbit.Models;
using Lowbit.Models.Safetensors;
using Lowbit.Quantization;
using Lowbit.Quantization.Checkpoints;
using Lowbit.Quantization.Configs;
using Lowbit.Quantization.Formats;
using Lowbit.Tensors;
using Lowbit.Tests.Models;

namespace Lowbit.Tests.Quantization.Checkpoints;

/// <summary>Write a quantized stories260K, load it back: the same formats, bit-identical tensors, the same text.</summary>
public sealed class QuantizedCheckpointTests : IDisposable
{
    private readonly TempDir _dir = new();

    private static string Bundled => Path.Combine(AppContext.BaseDirectory, "bundled-model");

    public static TheoryData<string> Names => new() { "int8wo", "int4wo-32", "int4wo-64", "int4wo-a8-32", "fp8wo", "nf4", "nf4-dq", "nf4-dq-32", "int8dq", "uintx-3-32", "fp6", "8da4w-32", "fp8dq-tensor", "fp8dq-row" };

    private static (string Name, IWeight Weight)[] Linears(LanguageModel lm) => [.. lm.Weights.Linears()];

    private static byte[][] Bytes(IWeight w) => w switch
    {
        DenseWeight d => [d.Tensor.AsBytes().ToArray()],
        Int8PerRowWeight q => [q.Data.AsBytes().ToArray(), q.Scales.AsBytes().ToArray()],
        Int4GroupedWeight q => [q.Packed.AsBytes().ToArray(), q.Scales.AsBytes().ToArray(), q.Zeros.AsBytes().ToArray()],
        Int4GroupedA8Weight { Weight: var q } => [q.Packed.AsBytes().ToArray(), q.Scales.AsBytes().ToArray(), q.Zeros.AsBytes().ToArray()],
        Int8DynamicInt4Weight q => [q.Packed.AsBytes().ToArray(), q.Scales.AsBytes().ToArray()],
        Float8DynamicWeight q => [q.Weight.Codes.AsBytes().ToArray(), q.Weight.Scales.AsBytes().ToArray()],
        Int8DynamicWeight q => [q.Weight.Data.AsBytes().ToArray(), q.Weight.Scales.AsBytes().ToArray()],
        Nf4DoubleQuantWeight q => [q.Codes.AsBytes().ToArray(), q.ScaleCodes.AsBytes().ToArray(), q.ScaleFactors.AsBytes().ToArray(), q.ScaleMean.AsBytes().ToArray()],
        CodedWeight q => q.Zeros is null ? [q.Codes.AsBytes().ToArray(), q.Scales.AsBytes().ToArray()]
            : [q.Codes.AsBytes().ToArray(), q.Scales.AsBytes().ToArray(), q.Zeros.AsBytes().ToArray()],
        _ => throw new ArgumentOutOfRangeException(nameof(w)),
    };

    [Theory]
    [MemberData(nameof(Names))]
    public void Written_checkpoint_loads_back_bit_identical(string name)
    {
        var config = QuantConfigs.Parse(name);
        string outDir = _dir.File(name);
        var report = QuantizedCheckpoint.Write(Bundled, config, outDir);
        Assert.Equal(["config.json", "model.safetensors", "tokenizer.model", "tokenizer_config.json"],
            Directory.GetFiles(outDir).Select(Path.GetFileName).Order());
        Assert.Equal([name], _dir.Entries()); // no temporary left beside it

        using var expected = LanguageModel.Load(Bundled, new ModelLoadOptions { Threads = 1, Quantization = config });
        using var loaded = LanguageModel.Load(outDir, new ModelLoadOptions { Threads = 1 });
        Assert.Equal(report.Summary(), expected.QuantizationReport!.Summary());
        var a = Linears(expected);
        var b = Linears(loaded);
        Assert.Equal(a.Length, b.Length);
        for (int i = 0; i < a.Length; i++)
        {
            Assert.Equal(a[i].Name, b[i].Name);
            Assert.Equal(a[i].Weight.GetType(), b[i].Weight.GetType());
            Assert.Equal(a[i].Weight.FormatName, b[i].Weight.FormatName);
            Assert.Equal(Bytes(a[i].Weight), Bytes(b[i].Weight));
        }

        int[] Generate(LanguageModel lm)
        {
            using var generator = new Generator(lm);
            return [.. generator.GenerateTokens(lm.Tokenizer.Encode("Once upon a time", addBos: true), new GenerationOptions { MaxTokens = 12, StopAtEos = false })];
        }

        Assert.Equal(Generate(expected), Generate(loaded));
    }

    [Fact]
    public void Metadata_names_each_quantized_layer_and_its_format()
    {
        string outDir = _dir.File("q");
        QuantizedCheckpoint.Write(Bundled, new Int4WeightOnlyConfig(64), outDir);
        using var file = new SafetensorsFile(Path.Combine(outDir, "model.safetensors"));
        Assert.Equal("int4wo-64", file.Metadata[QuantizedCheckpoint.ConfigKey]);
        Assert.Equal("int4wo-64", file.Metadata["lowbit.layer.model.layers.0.self_attn.q_proj"]);
        Assert.False(file.Metadata.ContainsKey("lowbit.layer.model.layers.0.mlp.down_proj")); // K = 172 stays dense
        Assert.Equal(QuantizedCheckpoint.Int4Layout, file.Metadata[QuantizedCheckpoint.Int4LayoutKey]);
        Assert.Equal(DType.U8, file.GetInfo("model.layers.0.self_attn.q_proj.weight").DType);
        Assert.Equal([64, 1], file.GetInfo("model.layers.0.self_attn.q_proj.weight_scale").Shape);
        Assert.Equal(DType.F32, file.GetInfo("model.layers.0.mlp.down_proj.weight").DType);
        Assert.False(file.Contains("lm_head.weight")); // tied head stays the embedding
    }

    [Fact]
    public void Metadata_gives_the_8da4w_layout_version()
    {
        string outDir = _dir.File("q84");
        QuantizedCheckpoint.Write(Bundled, new Int8DynamicActivationInt4WeightConfig(32), outDir);
        using var file = new SafetensorsFile(Path.Combine(outDir, "model.safetensors"));
        Assert.Equal("8da4w-32", file.Metadata["lowbit.layer.model.layers.0.self_attn.q_proj"]);
        Assert.Equal(QuantizedCheckpoint.Int8DynamicInt4Layout, file.Metadata[QuantizedCheckpoint.Int8DynamicInt4LayoutKey]);
        Assert.False(file.Metadata.ContainsKey(QuantizedCheckpoint.Int4LayoutKey));
    }

    /// <summary>nf4-dq's scaler block size lives in per-layer metadata (the shapes do not give it): a non-default one
    /// loads back, and a checkpoint without it is refused naming the key.</summary>
    [Fact]
    public void Nf4_dq_scaler_block_size_is_in_the_metadata()
    {
        string outDir = _dir.File("dq");
        const string q = "model.layers.0.self_attn.q_proj";
        QuantizedCheckpoint.Write(Bundled, new NF4WeightOnlyConfig(32, DoubleQuantize: true, ScalerBlockSize: 24), outDir);
        string path = Path.Combine(outDir, "model.safetensors");
        using (var file = new SafetensorsFile(path))
        {
            Assert.Equal("nf4-dq-32", file.Metadata["lowbit.layer." + q]);
            Assert.Equal("24", file.Metadata[QuantizedCheckpoint.ScalerBlockKeyPrefix + q]);
            Assert.Equal(DType.I8, file.GetInfo(q + ".weight_scale").DType);
            Assert.Equal([64, 2], file.GetInfo(q + ".weight_scale").Shape);
            Assert.Equal([6], file.GetInfo(q + ".weight_scale_factor").Shape); // ⌈128 / 24⌉
            Assert.Equal([1], file.GetInfo(q + ".weight_scale_mean").Shape);
        }

        using (var lm = LanguageModel.Load(outDir, new ModelLoadOptions { Threads = 1 }))
            Assert.Equal(24, Assert.IsType<Nf4DoubleQuantWeight>(lm.Weights.Layers[0].Query).ScalerBlockSize);

        // The same file without the key.
        string copy = path + ".copy";
        using (var file = new SafetensorsFile(path))
        {
            var metadata = file.Metadata.Where(e => e.Key != QuantizedCheckpoint.ScalerBlockKeyPrefix + q).ToDictionary();
            using var writer = new SafetensorsWriter(copy, [.. file.Tensors.Select(t => new SafetensorsEntry(t.Name, t.DType, t.Shape))], metadata);
            foreach (var t in file.Tensors)
                writer.WriteTensor(t.Name, file.GetTensor(t.Name));
            writer.Commit();
        }

        File.Move(copy, path, overwrite: true);
        var e = Assert.Throws<InvalidDataException>(() => LanguageModel.Load(outDir, new ModelLoadOptions { Threads = 1 }));
        Assert.Contains(QuantizedCheckpoint.ScalerBlockKeyPrefix + q, e.Message);
    }

    [Fact]
    public void Non_empty_output_is_refused_and_left_alone()
    {
        string outDir = _dir.File("busy");
        Directory.CreateDirectory(outDir);
        File.WriteAllText(Path.Combine(outDir, "keep.txt"), "x");
        Assert.Throws<IOException>(() => QuantizedCheckpoint.Write(Bundled, new Int8WeightOnlyConfig(), outDir));
        Assert.Equal(["keep.txt"], Directory.GetFiles(outDir).Select(Path.GetFileName));
    }

    [Fact]
    public void Quantizing_a_quantized_checkpoint_reports_the_layers_as_already_quantized()
    {
        string first = _dir.File("first"), second = _dir.File("second");
        QuantizedCheckpoint.Write(Bundled, new Int8WeightOnlyConfig(), first);
        var report = QuantizedCheckpoint.Write(first, new Int4WeightOnlyConfig(32), second);
        Assert.Empty(report.Quantized);
        Assert.Contains(report.Skipped, s => s.Reason == "already int8wo");
        using var lm = LanguageModel.Load(second, new ModelLoadOptions { Threads = 1 });
        Assert.IsType<Int8PerRowWeight>(lm.Weights.Layers[0].Query);
    }

    public void Dispose() => _dir.Dispose();
}
