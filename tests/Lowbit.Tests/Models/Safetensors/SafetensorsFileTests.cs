using System.Buffers.Binary;
using Lowbit.Models.Safetensors;
using Lowbit.Tensors;

namespace Lowbit.Tests.Models.Safetensors;

public sealed class SafetensorsFileTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

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
        string path = RawSafetensors.Write(_dir.File("ok.safetensors"), header, data);

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
        string path = RawSafetensors.Write(_dir.File("one.safetensors"), RawSafetensors.One("a", "U8", "[1]", 0, 1), [1]);
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
        string path = _dir.File("short.safetensors");
        File.WriteAllBytes(path, new byte[length]);
        var e = Assert.Throws<InvalidDataException>(() => new SafetensorsFile(path));
        Assert.Contains("short.safetensors", e.Message);
        Assert.Contains($"{length} bytes is too short", e.Message);
    }

    [Fact]
    public void RejectsHeaderLengthPastEndOfFile()
    {
        string path = _dir.File("long.safetensors");
        var bytes = new byte[16];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, 1000);
        File.WriteAllBytes(path, bytes);
        var e = Assert.Throws<InvalidDataException>(() => new SafetensorsFile(path));
        Assert.Contains("long.safetensors", e.Message);
        Assert.Contains("header length 1000 runs past the end of the file (16 bytes)", e.Message);
    }

    [Fact]
    public void RejectsHeaderThatIsNotJson()
    {
        string path = RawSafetensors.Write(_dir.File("bad.safetensors"), "{\"a\": [1,", []);
        var e = Assert.Throws<InvalidDataException>(() => new SafetensorsFile(path));
        Assert.Contains("bad.safetensors", e.Message);
        Assert.Contains("not valid JSON", e.Message);
    }

    [Fact]
    public void RejectsHeaderThatIsNotAnObject()
    {
        string path = RawSafetensors.Write(_dir.File("array.safetensors"), "[1, 2]", []);
        var e = Assert.Throws<InvalidDataException>(() => new SafetensorsFile(path));
        Assert.Contains("array.safetensors", e.Message);
        Assert.Contains("not an object", e.Message);
    }

    [Theory]
    [InlineData("XYZ", "unknown dtype \"XYZ\"")]
    [InlineData("F64", "dtype F64, which Lowbit does not support")]
    public void RejectsUnknownOrUnsupportedDType(string dtype, string expected)
    {
        string path = RawSafetensors.Write(_dir.File("dtype.safetensors"), RawSafetensors.One("t", dtype, "[1]", 0, 8), new byte[8]);
        var e = Assert.Throws<InvalidDataException>(() => new SafetensorsFile(path));
        Assert.Contains("dtype.safetensors", e.Message);
        Assert.Contains("\"t\"", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void RejectsNegativeDimension()
    {
        string path = RawSafetensors.Write(_dir.File("neg.safetensors"), RawSafetensors.One("t", "U8", "[2, -1]", 0, 0), []);
        var e = Assert.Throws<InvalidDataException>(() => new SafetensorsFile(path));
        Assert.Contains("neg.safetensors", e.Message);
        Assert.Contains("\"t\" has a negative dimension", e.Message);
    }

    [Fact]
    public void RejectsOffsetsPastTheData()
    {
        string path = RawSafetensors.Write(_dir.File("past.safetensors"), RawSafetensors.One("t", "U8", "[8]", 0, 8), new byte[4]);
        var e = Assert.Throws<InvalidDataException>(() => new SafetensorsFile(path));
        Assert.Contains("past.safetensors", e.Message);
        Assert.Contains("\"t\" has data_offsets [0, 8] past the end of the data section (4 bytes)", e.Message);
    }

    [Fact]
    public void RejectsEndBeforeBegin()
    {
        string path = RawSafetensors.Write(_dir.File("rev.safetensors"), RawSafetensors.One("t", "U8", "[2]", 4, 2), new byte[4]);
        var e = Assert.Throws<InvalidDataException>(() => new SafetensorsFile(path));
        Assert.Contains("rev.safetensors", e.Message);
        Assert.Contains("\"t\" has data_offsets [4, 2] that end before they begin", e.Message);
    }

    [Fact]
    public void RejectsOverlappingTensors()
    {
        string header = """
            {"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},
             "b": {"dtype": "U8", "shape": [4], "data_offsets": [2, 6]}}
            """;
        string path = RawSafetensors.Write(_dir.File("overlap.safetensors"), header, new byte[6]);
        var e = Assert.Throws<InvalidDataException>(() => new SafetensorsFile(path));
        Assert.Contains("overlap.safetensors", e.Message);
        Assert.Contains("\"b\" at data_offsets [2, 6] overlaps tensor \"a\" at [0, 4]", e.Message);
    }

    [Fact]
    public void RejectsByteCountThatDisagreesWithShape()
    {
        string path = RawSafetensors.Write(_dir.File("count.safetensors"), RawSafetensors.One("t", "F32", "[2, 3]", 0, 20), new byte[20]);
        var e = Assert.Throws<InvalidDataException>(() => new SafetensorsFile(path));
        Assert.Contains("count.safetensors", e.Message);
        Assert.Contains("\"t\" is [2, 3] F32, which needs 24 bytes, but data_offsets [0, 20] hold 20", e.Message);
    }
}
