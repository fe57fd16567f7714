using System.Buffers.Binary;
using Lowbit.Models.Safetensors;
using Lowbit.Tensors;

namespace Lowbit.Tests.Models.Safetensors;

public sealed class SafetensorsFileTests : TempDirTests
{
    [Fact]
    public void ReadsNamesInfosMetadataAndViews()
    {
        var data = new byte[24];
        for (int i = 0; i < 4; i++)
            BinaryPrimitives.WriteSingleLittleEndian(data.AsSpan(4 * i), i + 0.5f);
        data[16] = 7;
        string header = """
            {"__metadata__": {"format": "pt"},
             "w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
             "b": {"dtype": "I8", "shape": [8], "data_offsets": [16, 24]},
             "empty": {"dtype": "BF16", "shape": [0, 3], "data_offsets": [24, 24]}}
            """;
        string path = RawSafetensors.Write(Dir.File("ok.safetensors"), header, data);

        using var file = new SafetensorsFile(path);
        Assert.Equal(["w", "b", "empty"], file.Names);
        Assert.Equal("pt", file.Metadata["format"]);
        var info = file.GetInfo("w");
        Assert.Equal((DType.F32, 0L, 16L), (info.DType, info.DataBegin, info.DataEnd));
        Assert.Equal([2, 2], info.Shape);

        var w = file.GetTensor("w");
        Assert.Equal([0.5f, 1.5f, 2.5f, 3.5f], w.AsSpan<float>().ToArray());
        Assert.Equal(7, file.GetTensor("b").AsSpan<sbyte>()[0]);
        Assert.Equal(0, file.GetTensor("empty").ElementCount);
    }

    [Fact]
    public void MissingTensorNamesFileAndTensor()
    {
        string path = RawSafetensors.Write(Dir.File("one.safetensors"), RawSafetensors.One("a", "U8", "[1]", 0, 1), [1]);
        using var file = new SafetensorsFile(path);
        var e = Assert.Throws<InvalidDataException>(() => file.GetTensor("nope"));
        Assert.Contains("one.safetensors", e.Message);
        Assert.Contains("\"nope\"", e.Message);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(5)]
    public void RejectsFileShorterThanEightBytes(int length)
    {
        string path = Dir.File("short.safetensors");
        File.WriteAllBytes(path, new byte[length]);
        Rejects(path, $"{length} bytes is too short");
    }

    [Fact]
    public void RejectsHeaderLengthPastEndOfFile()
    {
        string path = Dir.File("long.safetensors");
        var bytes = new byte[16];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, 1000);
        File.WriteAllBytes(path, bytes);
        Rejects(path, "header length 1000 runs past the end of the file (16 bytes)");
    }

    [Fact]
    public void RejectsHeaderThatIsNotJson()
    {
        string path = RawSafetensors.Write(Dir.File("bad.safetensors"), "{\"a\": [1,", []);
        Rejects(path, "not valid JSON");
    }

    [Fact]
    public void RejectsHeaderThatIsNotAnObject()
    {
        string path = RawSafetensors.Write(Dir.File("array.safetensors"), "[1, 2]", []);
        Rejects(path, "not an object");
    }

    [Theory]
    [InlineData("XYZ", "unknown dtype \"XYZ\"")]
    [InlineData("F64", "dtype F64, which Lowbit does not support")]
    public void RejectsUnknownOrUnsupportedDType(string dtype, string expected)
    {
        string path = RawSafetensors.Write(Dir.File("dtype.safetensors"), RawSafetensors.One("t", dtype, "[1]", 0, 8), new byte[8]);
        Rejects(path, "\"t\"", expected);
    }

    [Fact]
    public void RejectsNegativeDimension()
    {
        string path = RawSafetensors.Write(Dir.File("neg.safetensors"), RawSafetensors.One("t", "U8", "[2, -1]", 0, 0), []);
        Rejects(path, "\"t\" has a negative dimension");
    }

    [Fact]
    public void RejectsOffsetsPastTheData()
    {
        string path = RawSafetensors.Write(Dir.File("past.safetensors"), RawSafetensors.One("t", "U8", "[8]", 0, 8), new byte[4]);
        Rejects(path, "\"t\" has data_offsets [0, 8] past the end of the data section (4 bytes)");
    }

    [Fact]
    public void RejectsEndBeforeBegin()
    {
        string path = RawSafetensors.Write(Dir.File("rev.safetensors"), RawSafetensors.One("t", "U8", "[2]", 4, 2), new byte[4]);
        Rejects(path, "\"t\" has data_offsets [4, 2] that end before they begin");
    }

    [Fact]
    public void RejectsOverlappingTensors()
    {
        string header = """
            {"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},
             "b": {"dtype": "U8", "shape": [4], "data_offsets": [2, 6]}}
            """;
        string path = RawSafetensors.Write(Dir.File("overlap.safetensors"), header, new byte[6]);
        Rejects(path, "\"b\" at data_offsets [2, 6] overlaps tensor \"a\" at [0, 4]");
    }

    [Fact]
    public void RejectsByteCountThatDisagreesWithShape()
    {
        string path = RawSafetensors.Write(Dir.File("count.safetensors"), RawSafetensors.One("t", "F32", "[2, 3]", 0, 20), new byte[20]);
        Rejects(path, "\"t\" is [2, 3] F32, which needs 24 bytes, but data_offsets [0, 20] hold 20");
    }

    /// <summary>Opening <paramref name="path"/> fails with a message naming the file and each fragment.</summary>
    private static void Rejects(string path, params string[] fragments)
    {
        var e = Assert.Throws<InvalidDataException>(() => new SafetensorsFile(path));
        Assert.Contains(Path.GetFileName(path), e.Message);
        foreach (string fragment in fragments)
            Assert.Contains(fragment, e.Message);
    }
}
