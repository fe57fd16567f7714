using Lowbit.Models.HuggingFace;
using Lowbit.Models.Safetensors;
using Lowbit.Tensors;

namespace Lowbit.Tests.Models.HuggingFace;

public sealed class CheckpointTensorsTests : TempDirTests
{
    /// <summary>A file of U8 tensors [n] whose bytes all equal <paramref name="fill"/>.</summary>
    private string WriteShard(string fileName, byte fill, params (string Name, int Length)[] tensors)
    {
        string path = Dir.File(fileName);
        using var writer = new SafetensorsWriter(path, [.. tensors.Select(t => new SafetensorsEntry(t.Name, DType.U8, [t.Length]))]);
        foreach (var (name, length) in tensors)
            writer.WriteTensor(name, Enumerable.Repeat(fill, length).ToArray());
        writer.Commit();
        return path;
    }

    private void WriteIndex(string weightMap) =>
        File.WriteAllText(Dir.File(CheckpointTensors.IndexFileName), "{\"metadata\": {\"total_size\": 10}, \"weight_map\": {" + weightMap + "}}");

    [Fact]
    public void OpensASingleFile()
    {
        WriteShard("model.safetensors", 3, ("a", 2), ("b", 4));
        using var ckpt = new CheckpointTensors(Dir.Path);
        Assert.Equal(["a", "b"], ckpt.Names.Order());
        Assert.True(ckpt.Contains("b"));
        Assert.False(ckpt.Contains("c"));
        Assert.Equal([3, 3, 3, 3], ckpt.Get("b").AsSpan<byte>().ToArray());
    }

    [Fact]
    public void OpensShardsThroughTheIndex()
    {
        WriteShard("model-00001-of-00002.safetensors", 1, ("a", 2));
        WriteShard("model-00002-of-00002.safetensors", 2, ("b", 3), ("c", 1));
        WriteIndex("""
            "a": "model-00001-of-00002.safetensors",
            "b": "model-00002-of-00002.safetensors",
            "c": "model-00002-of-00002.safetensors"
            """);
        using var ckpt = new CheckpointTensors(Dir.Path);
        Assert.Equal(["a", "b", "c"], ckpt.Names.Order());
        Assert.Equal(2, ckpt.Files.Count);
        Assert.Equal([1, 1], ckpt.Get("a").AsSpan<byte>().ToArray());
        Assert.Equal([2, 2, 2], ckpt.Get("b").AsSpan<byte>().ToArray());
    }

    [Fact]
    public void MissingTensorNamesTheDirectoryAndTheFilesSearched()
    {
        WriteShard("model-00001-of-00002.safetensors", 1, ("a", 2));
        WriteShard("model-00002-of-00002.safetensors", 2, ("b", 3));
        WriteIndex("""
            "a": "model-00001-of-00002.safetensors",
            "b": "model-00002-of-00002.safetensors"
            """);
        using var ckpt = new CheckpointTensors(Dir.Path);
        var e = Assert.Throws<InvalidDataException>(() => ckpt.Get("model.layers.3.mlp.down_proj.weight"));
        Assert.Equal(
            $"model.layers.3.mlp.down_proj.weight not found in {Dir.Path} (searched model-00001-of-00002.safetensors, model-00002-of-00002.safetensors).",
            e.Message);
    }

    [Fact]
    public void ShapeCheckSaysWhatWasFoundAndWhatWasExpected()
    {
        string path = Dir.File("model-00002-of-00004.safetensors");
        using (var writer = new SafetensorsWriter(path, [new SafetensorsEntry("model.layers.3.mlp.down_proj.weight", DType.BF16, [40, 110])]))
        {
            writer.WriteTensor("model.layers.3.mlp.down_proj.weight", new byte[40 * 110 * 2]);
            writer.Commit();
        }
        WriteIndex("""
            "model.layers.3.mlp.down_proj.weight": "model-00002-of-00004.safetensors"
            """);
        using var ckpt = new CheckpointTensors(Dir.Path);
        Assert.Equal([40, 110], ckpt.Get("model.layers.3.mlp.down_proj.weight", [40, 110], "config.json").Shape);
        var e = Assert.Throws<InvalidDataException>(() =>
            ckpt.Get("model.layers.3.mlp.down_proj.weight", [40, 143], "config.json (hidden_size, intermediate_size)"));
        Assert.Equal(
            "model-00002-of-00004.safetensors: \"model.layers.3.mlp.down_proj.weight\" is [40, 110] BF16; config.json (hidden_size, intermediate_size) expects [40, 143]",
            e.Message);
        var d = Assert.Throws<InvalidDataException>(() =>
            ckpt.Get("model.layers.3.mlp.down_proj.weight", [40, 110], "the int8 loader", DType.F32));
        Assert.EndsWith("is [40, 110] BF16; the int8 loader expects [40, 110] F32", d.Message);
    }

    [Fact]
    public void IndexNamingAMissingShardFails()
    {
        WriteIndex("""
            "a": "model-00001-of-00002.safetensors"
            """);
        var e = Assert.Throws<FileNotFoundException>(() => new CheckpointTensors(Dir.Path));
        Assert.Contains(CheckpointTensors.IndexFileName, e.Message);
        Assert.Contains("shard model-00001-of-00002.safetensors (holding \"a\") does not exist", e.Message);
    }

    [Fact]
    public void IndexNamingATensorItsShardLacksFails()
    {
        WriteShard("model-00001-of-00001.safetensors", 1, ("a", 2));
        WriteIndex("""
            "zz": "model-00001-of-00001.safetensors"
            """);
        var e = Assert.Throws<InvalidDataException>(() => new CheckpointTensors(Dir.Path));
        Assert.Contains("\"zz\" is mapped to model-00001-of-00001.safetensors, which has no such tensor", e.Message);
    }

    [Fact]
    public void IndexPointingOutsideTheDirectoryFails()
    {
        WriteIndex("""
            "a": "../elsewhere.safetensors"
            """);
        var e = Assert.Throws<InvalidDataException>(() => new CheckpointTensors(Dir.Path));
        Assert.Contains("not a file name in the model directory", e.Message);
    }

    [Fact]
    public void IndexWithoutWeightMapFails()
    {
        File.WriteAllText(Dir.File(CheckpointTensors.IndexFileName), """{"metadata": {}}""");
        var e = Assert.Throws<InvalidDataException>(() => new CheckpointTensors(Dir.Path));
        Assert.Contains(CheckpointTensors.IndexFileName, e.Message);
        Assert.Contains("no \"weight_map\"", e.Message);
    }

    [Fact]
    public void DirectoryWithoutWeightsFails()
    {
        var e = Assert.Throws<FileNotFoundException>(() => new CheckpointTensors(Dir.Path));
        Assert.Equal($"{Dir.Path} has neither model.safetensors nor model.safetensors.index.json.", e.Message);
    }

    [Fact]
    public void MissingDirectoryFails()
    {
        string missing = Dir.File("absent");
        var e = Assert.Throws<DirectoryNotFoundException>(() => new CheckpointTensors(missing));
        Assert.Contains(missing, e.Message);
    }
}
